"""The service's pipeline page: for each environment, the pipeline a deploy gets, why, its version and
digest, and its steps written out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from quarterdeck.access.deps import reader
from quarterdeck.catalog import service as catalog
from quarterdeck.deploys.pipelines import service
from quarterdeck.web.deps import SessionDep
from quarterdeck.web.templating import templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(reader)])


@router.get("/services/{slug:path}/pipeline", response_class=HTMLResponse, name="service_pipeline")
def service_pipeline(request: Request, slug: str, session: SessionDep) -> Response:
    view = catalog.service_view(session, slug)
    context = {"s": view, "choices": service.pipelines_for_service(session, view.slug)}
    return templates.TemplateResponse(request, "deploys/pipeline.html", context)
