"""Catalog sources over HTTP: `GET /api/v1/sources[/{id}]`, `POST /api/v1/sources/{id}/sync` for
automation, and the admin page `/admin/sources` with its "Sync now" buttons. Who may is decided in
source_service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from quarterdeck.access.deps import SignedInDep
from quarterdeck.catalog import source_service
from quarterdeck.catalog.source_service import SourceDetail, SourceOut, SyncQueued
from quarterdeck.web.deps import MAX_ID, ClockDep, IdPath, SessionDep
from quarterdeck.web.templating import templates

api_router = APIRouter(prefix="/api/v1", tags=["sources"])
pages_router = APIRouter(include_in_schema=False)


@api_router.get("/sources", response_model=list[SourceOut])
def list_sources(session: SessionDep, actor: SignedInDep) -> list[SourceOut]:
    """Every catalog source with its last sync: when, how long, its result and error, the next one."""
    return source_service.list_sources(session, actor)


@api_router.get("/sources/{source_id}", response_model=SourceDetail)
def get_source(source_id: IdPath, session: SessionDep, actor: SignedInDep) -> SourceDetail:
    return source_service.get_source(session, actor, source_id)


@api_router.post("/sources/{source_id}/sync", status_code=202, response_model=SyncQueued)
def sync_source(source_id: IdPath, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> SyncQueued:
    """Queue a sync of a git source now; answers with the job that runs it (the same one when asked
    again before it starts)."""
    with session.begin():
        return source_service.request_sync(session, actor, source_id, now=clock.now())


@pages_router.get("/admin/sources", response_class=HTMLResponse, name="admin_sources")
def sources_page(
    request: Request,
    session: SessionDep,
    actor: SignedInDep,
    queued: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    sources = source_service.list_sources(session, actor)
    context = {"sources": sources, "queued": next((s for s in sources if s.id == queued), None)}
    return templates.TemplateResponse(request, "catalog/sources.html", context)


@pages_router.post("/admin/sources/{source_id}/sync")
def sync_source_page(source_id: IdPath, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> Response:
    with session.begin():
        source_service.request_sync(session, actor, source_id, now=clock.now())
    return RedirectResponse(f"/admin/sources?queued={source_id}", status_code=303)
