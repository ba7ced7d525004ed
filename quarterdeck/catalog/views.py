"""Catalog pages: search, service list and page, teams, people, systems, dependency graph."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from quarterdeck.access.deps import ReaderDep, SignedInDep, reader
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service
from quarterdeck.catalog.schemas import ServiceFilters
from quarterdeck.domains import entity_page_contexts
from quarterdeck.errors import Invalid
from quarterdeck.web.deps import ClockDep, SessionDep, SettingsDep
from quarterdeck.web.templating import is_htmx, templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(reader)])
PageNo = Annotated[int, Query(ge=1, le=100_000)]
Text = Annotated[str | None, Query(max_length=200)]
Kind = Annotated[str | None, Query(pattern="^(component|api|resource)$")]


LIST_PAGE_SIZE = 100


def _from_other_domains(
    session: Session, actor: Actor, entity_type: str, key: str, name: str
) -> dict[str, Any]:
    """What domains above the catalog add to an entity's page (the home's star button), through the
    registry: the catalog imports none of them."""
    context: dict[str, Any] = {}
    for build in entity_page_contexts():
        context.update(build(session, actor, entity_type=entity_type, key=key, name=name))
    return context


def _list_page(
    request: Request, session: Session, table: str, template: str, q: str | None, page: int
) -> Response:
    """The one shape of the team, people and system lists: a filter box and a page of rows."""
    rows, total = service.list_entities(session, table, text=q, page=page, per_page=LIST_PAGE_SIZE)
    context = {"rows": rows, "total": total, "q": q or "", "page": page, "per_page": LIST_PAGE_SIZE}
    return templates.TemplateResponse(request, template, context)


@router.get("/search", response_class=HTMLResponse, name="search")
def search_page(request: Request, session: SessionDep, q: Text = None) -> Response:
    hits = service.search_catalog(session, q, limit=10 if is_htmx(request) else 50) if q else []
    template = "catalog/_search_results.html" if is_htmx(request) else "catalog/search.html"
    return templates.TemplateResponse(request, template, {"q": q or "", "hits": hits})


@router.get("/services", response_class=HTMLResponse, name="services")
def services_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    owner: Text = None,
    tier: Annotated[str | None, Query(pattern="^[1-4]?$")] = None,
    lifecycle: Text = None,
    tag: Text = None,
    system: Text = None,
    kind: Annotated[str | None, Query(pattern="^(component|api|resource)?$")] = None,
    q: Text = None,
    page: PageNo = 1,
) -> Response:
    """Filter form fields arrive empty when unset ("tier="), so empty means "any"."""
    filters = ServiceFilters(
        owner=owner or None,
        tier=int(tier) if tier else None,
        lifecycle=lifecycle or None,
        tag=tag or None,
        system=system or None,
        kind=kind or None,
        text=q or None,
    )
    result = service.list_services(session, filters, page=page, per_page=settings.page_size)
    context = {"result": result, "filters": filters, "facets": service.service_facets(session)}
    template = "catalog/_service_rows.html" if is_htmx(request) else "catalog/services.html"
    return templates.TemplateResponse(request, template, context)


@router.get("/services/{slug:path}/graph.svg", name="service_graph")
def service_graph(slug: str, session: SessionDep, kind: Kind = None) -> Response:
    svg = service.render_neighbourhood(session, slug, kind)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


EDITABLE = ("title", "description", "tier", "lifecycle", "owner", "system")


def _edit_page(request: Request, row: object, values: dict[str, object], errors: list[Any]) -> Response:
    context = {"row": row, "values": values, "errors": errors, "tier_choices": [1, 2, 3, 4]}
    return templates.TemplateResponse(
        request, "catalog/service_edit.html", context, status_code=422 if errors else 200
    )


@router.get("/services/{slug:path}/edit", response_class=HTMLResponse, name="service_edit")
def service_edit_page(
    request: Request, slug: str, session: SessionDep, actor: SignedInDep, kind: Kind = None
) -> Response:
    row = service.editable_row(session, actor, slug, kind)
    fields = service.current_fields(row)
    return _edit_page(request, row, {key: fields.get(key) for key in EDITABLE}, [])


@router.post("/services/{slug:path}/edit", response_class=HTMLResponse)
def service_edit(
    request: Request,
    slug: str,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    title: Annotated[str, Form(max_length=300)],
    owner: Annotated[str, Form(max_length=200)],
    description: Annotated[str, Form(max_length=10_000)] = "",
    tier: Annotated[str, Form(pattern="^[1-4]?$")] = "",
    lifecycle: Annotated[str, Form(max_length=100)] = "production",
    system: Annotated[str, Form(max_length=200)] = "",
    kind: Kind = None,
) -> Response:
    """A portal edit of the fields people change most; the API edits everything."""
    values: dict[str, object] = {
        "title": title,
        "description": description,
        "tier": int(tier) if tier else None,
        "lifecycle": lifecycle,
        "owner": owner,
        "system": system or None,
    }
    try:
        with session.begin():
            row = service.find_row(session, "service", slug, kind)
            service.update(
                session,
                actor,
                row,
                values,
                if_match=None,
                partial=True,
                now=clock.now(),
            )
    except Invalid as exc:
        row = service.find_row(session, "service", slug, kind)
        errors = exc.details if isinstance(exc.details, list) else [{"field": None, "message": exc.message}]
        return _edit_page(request, row, values, errors)
    target = f"/services/{row.slug}" + (f"?kind={row.kind}" if row.kind != "component" else "")  # type: ignore[union-attr]
    return RedirectResponse(target, status_code=303)


@router.get("/services/{slug:path}", response_class=HTMLResponse, name="service")
def service_page(
    request: Request, slug: str, session: SessionDep, actor: ReaderDep, kind: Kind = None
) -> Response:
    row = service.find_row(session, "service", slug, kind)
    view = service.service_view(session, row.slug, row.kind)  # type: ignore[union-attr]
    key = view.slug if view.kind == "component" else f"{view.kind}:{view.slug}"
    context = {
        "s": view,
        "problems": service.suggested(session, view.problems),
        "graph_svg": service.render_neighbourhood(session, view.slug, view.kind),
        "can_edit": service.may_edit(actor, row),
        **_from_other_domains(session, actor, "service", key, view.title),
    }
    return templates.TemplateResponse(request, "catalog/service.html", context)


@router.get("/teams", response_class=HTMLResponse, name="teams")
def teams_page(request: Request, session: SessionDep, q: Text = None, page: PageNo = 1) -> Response:
    return _list_page(request, session, "team", "catalog/teams.html", q, page)


@router.get("/teams/{slug:path}", response_class=HTMLResponse, name="team")
def team_page(request: Request, slug: str, session: SessionDep, actor: ReaderDep) -> Response:
    team = service.team_view(session, slug)
    context = {
        "t": team,
        "problems": service.suggested(session, team.problems),
        **_from_other_domains(session, actor, "team", team.slug, team.name),
    }
    return templates.TemplateResponse(request, "catalog/team.html", context)


@router.get("/people", response_class=HTMLResponse, name="people")
def people_page(request: Request, session: SessionDep, q: Text = None, page: PageNo = 1) -> Response:
    return _list_page(request, session, "person", "catalog/people.html", q, page)


@router.get("/people/{key}", response_class=HTMLResponse, name="person")
def person_page(request: Request, key: str, session: SessionDep, actor: ReaderDep) -> Response:
    person = service.person_view(session, key)
    context = {
        "p": person,
        "problems": service.suggested(session, person.problems),
        **_from_other_domains(session, actor, "person", person.slug, person.name),
    }
    return templates.TemplateResponse(request, "catalog/person.html", context)


@router.get("/systems", response_class=HTMLResponse, name="systems")
def systems_page(request: Request, session: SessionDep, q: Text = None, page: PageNo = 1) -> Response:
    return _list_page(request, session, "system", "catalog/systems.html", q, page)


@router.get("/systems/{slug:path}", response_class=HTMLResponse, name="system")
def system_page(request: Request, slug: str, session: SessionDep, actor: ReaderDep) -> Response:
    system = service.system_view(session, slug)
    context = {
        "sys": system,
        "problems": service.suggested(session, system.problems),
        **_from_other_domains(session, actor, "system", system.slug, system.title),
    }
    return templates.TemplateResponse(request, "catalog/system.html", context)
