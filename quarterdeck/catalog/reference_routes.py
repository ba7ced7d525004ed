"""Dangling references over HTTP, for admins: `GET /api/v1/references` and the page
`/admin/references`, a page at a time. Who may is decided in references.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from quarterdeck.access.deps import SignedInDep
from quarterdeck.catalog import references, schemas
from quarterdeck.web.deps import SessionDep
from quarterdeck.web.templating import templates

api_router = APIRouter(prefix="/api/v1", tags=["catalog"])
pages_router = APIRouter(include_in_schema=False)

PageNo = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=500)]
PAGE_SIZE = 50


@api_router.get("/references", response_model=schemas.Page[schemas.DanglingOut])
def list_dangling(
    session: SessionDep, actor: SignedInDep, page: PageNo = 1, per_page: PerPage = PAGE_SIZE
) -> schemas.Page[schemas.DanglingOut]:
    """Every reference in the catalog that names nothing (an owner, system, dependency, contact,
    parent team, member or domain), services first: who refers, by which field, the missing name,
    the nearest existing names, and the file:line it was imported from. Empty: every reference
    resolves."""
    return references.dangling_page(session, actor, page=page, per_page=per_page)


@pages_router.get("/admin/references", response_class=HTMLResponse, name="admin_references")
def references_page(request: Request, session: SessionDep, actor: SignedInDep, page: PageNo = 1) -> Response:
    listed = references.dangling_page(session, actor, page=page, per_page=PAGE_SIZE)
    return templates.TemplateResponse(request, "catalog/references.html", {"listed": listed})
