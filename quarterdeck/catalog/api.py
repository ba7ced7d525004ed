"""Catalog JSON API under /api/v1: services, teams, people, systems, search, whois, the schema.

No `from __future__ import annotations` here: FastAPI must see the real body types of the routes
that `_register` builds in a closure.
"""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.catalog import schemas, service
from quarterdeck.catalog.descriptors.quarterdeck_format import (
    PersonFields,
    ServiceFields,
    SystemFields,
    TeamFields,
    descriptor_json_schema,
)
from quarterdeck.db import retrying_on_race
from quarterdeck.web.deps import ClockDep, SessionDep, read_in_thread

router = APIRouter(prefix="/api/v1", tags=["catalog"], dependencies=[Depends(reader)])
public_router = APIRouter(prefix="/api/v1", tags=["catalog"])
"""Routes anyone may read, signed in or not: the descriptor JSON Schema that editors fetch."""

PageNo = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=500)]
IfMatch = Annotated[str | None, Header()]
Kind = Annotated[str | None, Query(pattern="^(component|api|resource)$")]
PatchBody = Annotated[dict[str, Any], Body()]


def _with_etag(model: Any, etag: str, status: int = 200, location: str | None = None) -> JSONResponse:
    """`location` is percent-encoded: a handle made from an e-mail may hold any character, headers can't."""
    headers = {"ETag": etag} | ({"Location": quote(location, safe="/")} if location else {})
    return JSONResponse(model.model_dump(mode="json"), status_code=status, headers=headers)


def _not_modified(request: Request, etag: str) -> bool:
    return request.headers.get("if-none-match") == etag


# ---------------------------------------------------------------- services


@router.get("/services", response_model=schemas.CursorPage[schemas.ServiceSummary])
async def list_services(
    request: Request,
    owner: str | None = None,
    tier: Annotated[int | None, Query(ge=1, le=4)] = None,
    lifecycle: str | None = None,
    tag: str | None = None,
    system: str | None = None,
    kind: Kind = None,
    type: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
    cursor: Annotated[str | None, Query(max_length=600)] = None,
) -> schemas.CursorPage[schemas.ServiceSummary]:
    """Services by slug. Follow `next_cursor` (`?cursor=`) to walk the whole list: each page is one
    index range however deep; `?page=` is kept for jumping to a page number."""
    filters = schemas.ServiceFilters(
        owner=owner, tier=tier, lifecycle=lifecycle, tag=tag, system=system, kind=kind, type=type, text=q
    )
    return await read_in_thread(
        request,
        lambda session: service.list_services(session, filters, page=page, per_page=per_page, cursor=cursor),
    )


@router.post("/services", status_code=201, response_model=schemas.ServiceOut)
def create_service(
    body: ServiceFields, session: SessionDep, clock: ClockDep, actor: ActorDep
) -> JSONResponse:
    """A reference to something the catalog does not have is listed in the answer's `problems`;
    with QD_STRICT_REFERENCES it is refused (422, naming the field and the nearest names)."""
    fields = body.model_dump(exclude_unset=True)
    row = retrying_on_race(
        session,
        lambda: service.create(session, actor, "service", fields, now=clock.now()),
    )
    view = service.service_view(session, row.slug, "component")
    return _with_etag(view, view.etag, 201, f"/api/v1/services/{view.slug}")


@router.get("/services/{slug:path}", response_model=schemas.ServiceOut)
async def get_service(request: Request, slug: str, kind: Kind = None) -> Response:
    """The hottest route of the portal: one indexed read of the stored answer (readmodel.py), in one
    hop to a worker thread."""
    etag, body = await read_in_thread(request, lambda session: service.service_json(session, slug, kind))
    if _not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


@router.put("/services/{slug:path}", response_model=schemas.ServiceOut)
def replace_service(
    slug: str,
    body: ServiceFields,
    session: SessionDep,
    clock: ClockDep,
    actor: ActorDep,
    if_match: IfMatch = None,
    kind: Kind = None,
) -> JSONResponse:
    with session.begin():
        row = service.find_row(session, "service", slug, kind)
        fields = body.model_dump(exclude_unset=True)
        service.update(
            session,
            actor,
            row,
            fields,
            if_match=if_match,
            partial=False,
            now=clock.now(),
        )
    view = service.service_view(session, row.slug, row.kind)  # type: ignore[union-attr]
    return _with_etag(view, view.etag)


@router.patch("/services/{slug:path}", response_model=schemas.ServiceOut)
def patch_service(
    slug: str,
    body: PatchBody,
    session: SessionDep,
    clock: ClockDep,
    actor: ActorDep,
    if_match: IfMatch = None,
    kind: Kind = None,
) -> JSONResponse:
    with session.begin():
        row = service.find_row(session, "service", slug, kind)
        service.update(
            session,
            actor,
            row,
            body,
            if_match=if_match,
            partial=True,
            now=clock.now(),
        )
    view = service.service_view(session, row.slug, row.kind)  # type: ignore[union-attr]
    return _with_etag(view, view.etag)


@router.delete("/services/{slug:path}", status_code=204)
def delete_service(
    slug: str,
    session: SessionDep,
    clock: ClockDep,
    actor: ActorDep,
    if_match: IfMatch = None,
    kind: Kind = None,
) -> Response:
    with session.begin():
        row = service.find_row(session, "service", slug, kind)
        service.delete(session, actor, row, if_match=if_match, now=clock.now())
    return Response(status_code=204)


# ---------------------------------------------------------------- teams, people, systems


def _register(table: str, plural: str, fields_model: type[Any], out_model: type[Any], view: Any) -> None:
    """List/create/get/replace/patch/delete routes for one entity table, same shape as services'."""

    def list_(
        session: SessionDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        page: PageNo = 1,
        per_page: PerPage = 50,
    ) -> dict[str, Any]:
        rows, total = service.list_entities(session, table, text=q, page=page, per_page=per_page)
        items = [view(session, row.slug).model_dump(mode="json") for row in rows]
        return {"items": items, "total": total, "page": page, "per_page": per_page}

    def create(
        body: fields_model,  # type: ignore[valid-type]
        session: SessionDep,
        clock: ClockDep,
        actor: ActorDep,
    ) -> JSONResponse:
        fields = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        row = retrying_on_race(
            session,
            lambda: service.create(session, actor, table, fields, now=clock.now()),
        )
        out = view(session, row.slug)
        return _with_etag(out, out.etag, 201, f"/api/v1/{plural}/{row.slug}")

    def get(request: Request, key: str, session: SessionDep) -> Response:
        out = view(session, key)
        if _not_modified(request, out.etag):
            return Response(status_code=304, headers={"ETag": out.etag})
        return _with_etag(out, out.etag)

    def replace(
        key: str,
        body: fields_model,  # type: ignore[valid-type]
        session: SessionDep,
        clock: ClockDep,
        actor: ActorDep,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        with session.begin():
            row = service.find_row(session, table, key)
            fields = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
            service.update(
                session,
                actor,
                row,
                fields,
                if_match=if_match,
                partial=False,
                now=clock.now(),
            )
        out = view(session, row.slug)
        return _with_etag(out, out.etag)

    def patch(
        key: str,
        body: PatchBody,
        session: SessionDep,
        clock: ClockDep,
        actor: ActorDep,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        with session.begin():
            row = service.find_row(session, table, key)
            service.update(
                session,
                actor,
                row,
                body,
                if_match=if_match,
                partial=True,
                now=clock.now(),
            )
        out = view(session, row.slug)
        return _with_etag(out, out.etag)

    def delete(
        key: str, session: SessionDep, clock: ClockDep, actor: ActorDep, if_match: IfMatch = None
    ) -> Response:
        with session.begin():
            row = service.find_row(session, table, key)
            service.delete(session, actor, row, if_match=if_match, now=clock.now())
        return Response(status_code=204)

    page_model = schemas.Page[out_model]  # type: ignore[valid-type]
    router.add_api_route(
        f"/{plural}", list_, methods=["GET"], response_model=page_model, name=f"list_{plural}"
    )
    router.add_api_route(
        f"/{plural}",
        create,
        methods=["POST"],
        status_code=201,
        response_model=out_model,
        name=f"create_{table}",
    )
    router.add_api_route(
        f"/{plural}/{{key:path}}", get, methods=["GET"], response_model=out_model, name=f"get_{table}"
    )
    router.add_api_route(
        f"/{plural}/{{key:path}}", replace, methods=["PUT"], response_model=out_model, name=f"replace_{table}"
    )
    router.add_api_route(
        f"/{plural}/{{key:path}}", patch, methods=["PATCH"], response_model=out_model, name=f"patch_{table}"
    )
    router.add_api_route(
        f"/{plural}/{{key:path}}", delete, methods=["DELETE"], status_code=204, name=f"delete_{table}"
    )


_register("team", "teams", TeamFields, schemas.TeamOut, service.team_view)
_register("person", "people", PersonFields, schemas.PersonOut, service.person_view)
_register("system", "systems", SystemFields, schemas.SystemOut, service.system_view)


# ---------------------------------------------------------------- search, whois, schema


@router.get("/search", response_model=list[schemas.SearchHit])
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[schemas.SearchHit]:
    return await read_in_thread(
        request, lambda session: service.search_catalog(session, q, limit=limit, entity_type=type)
    )


@router.get("/whois/{name:path}", response_model=schemas.Whois)
def whois(name: str, session: SessionDep) -> schemas.Whois:
    return service.whois(session, name)


@public_router.get("/schema/descriptor.json")
def descriptor_schema() -> dict[str, Any]:
    return descriptor_json_schema()
