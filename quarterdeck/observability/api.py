"""Observability JSON API: a service's graphs over a time range, and the panels a team adds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.observability import service
from quarterdeck.observability.schemas import GraphsOut, PanelIn, PanelOut
from quarterdeck.web.deps import ClockDep, SessionDep, runtime_of

router = APIRouter(prefix="/api/v1", tags=["observability"], dependencies=[Depends(reader)])


@router.get("/services/{slug:path}/graphs", response_model=GraphsOut)
def graphs(
    request: Request,
    slug: str,
    session: SessionDep,
    clock: ClockDep,
    range: Annotated[str, Query(max_length=10)] = "6h",
    env: Annotated[str, Query(max_length=100)] = "",
) -> GraphsOut:
    """Request rate, error ratio, latency p50/p99 and the team's own panels, from Prometheus."""
    source = runtime_of(request).prometheus
    return service.graphs(session, slug, range_text=range, env=env, source=source, now=clock.now())


@router.post("/services/{slug:path}/panels", response_model=PanelOut, status_code=201)
def add_panel(slug: str, body: PanelIn, session: SessionDep, actor: ActorDep, clock: ClockDep) -> PanelOut:
    with session.begin():
        panel = service.add_panel(session, actor, slug, body.model_dump(), at=clock.now())
    return PanelOut(
        key=panel.key,
        title=panel.title,
        unit=panel.unit,
        query=panel.query,
        custom=True,
        series=[],
        error=None,
    )


@router.delete("/services/{slug:path}/panels/{key}", status_code=204)
def remove_panel(slug: str, key: str, session: SessionDep, actor: ActorDep, clock: ClockDep) -> Response:
    with session.begin():
        service.remove_panel(session, actor, slug, key, at=clock.now())
    return Response(status_code=204)
