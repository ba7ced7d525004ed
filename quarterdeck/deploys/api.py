"""Deploys JSON API: environments, deploy reports from CI, history, live versions, the matrix, and change
requests (approvals), judged against services and environments as they are now.

No `from __future__ import annotations`: FastAPI reads the union body type of `report_deploys`.
"""

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.access.schemas import Actor, ChangeRequestOut
from quarterdeck.clock import Clock
from quarterdeck.db import retrying_on_race
from quarterdeck.deploys import rollouts, service
from quarterdeck.deploys.schemas import (
    SLUG,
    ApprovalIn,
    ChangeOut,
    DecisionIn,
    DeployDetail,
    DeployPage,
    DeployReport,
    EnvironmentIn,
    EnvironmentOut,
    LiveOut,
    MatrixPage,
    ReportResult,
)
from quarterdeck.deploys.service import DeployFilters
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, runtime_of

router = APIRouter(prefix="/api/v1", tags=["deploys"], dependencies=[Depends(reader)])
PageNo = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=500)]
Status = Annotated[str | None, Query(pattern="^(running|succeeded|failed|rolled_back)$")]
RequestStatus = Annotated[str | None, Query(pattern="^(pending|approved|rejected|not_required)$")]


@router.get("/environments", response_model=list[EnvironmentOut])
def list_environments(session: SessionDep) -> list[EnvironmentOut]:
    return service.environments(session)


@router.put("/environments/{slug}", response_model=EnvironmentOut)
def put_environment(
    slug: Annotated[str, Path(pattern=SLUG, max_length=100)],
    body: EnvironmentIn,
    session: SessionDep,
    actor: ActorDep,
    clock: ClockDep,
) -> EnvironmentOut:
    with session.begin():
        env = service.put_environment(session, actor, slug, body, at=clock.now())
    return service.env_out(env)


@router.post("/deploys", response_model=list[ReportResult] | ReportResult)
def report_deploys(
    body: Annotated[DeployReport | list[DeployReport], Body()],
    session: SessionDep,
    actor: ActorDep,
    clock: ClockDep,
) -> JSONResponse:
    """Report one deploy (an object) or a batch (a list, at most 1000, all or nothing). A report whose
    `id` was seen before is a retry or a status change of that deploy, never a second record:
    201 when something was created, else 200."""
    reports = body if isinstance(body, list) else [body]
    results = retrying_on_race(session, lambda: service.report(session, actor, reports, at=clock.now()))
    status = 201 if any(r.outcome == "created" for r in results) else 200
    content = (
        [r.model_dump(mode="json") for r in results]
        if isinstance(body, list)
        else results[0].model_dump(mode="json")
    )
    return JSONResponse(content, status_code=status)


def history_filters(
    environment: Annotated[str | None, Query(max_length=100)] = None,
    status: Status = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    flagged: Annotated[
        bool, Query(description="Only tier-1 production deploys that shipped without an approval")
    ] = False,
) -> DeployFilters:
    """The filters of every deploy history: the feed and a service's own."""
    return DeployFilters(environment=environment, status=status, since=since, until=until, flagged=flagged)


HistoryFilters = Annotated[DeployFilters, Depends(history_filters)]


@router.get("/deploys", response_model=DeployPage)
def recent_deploys(
    session: SessionDep,
    filters: HistoryFilters,
    service_: Annotated[str | None, Query(alias="service", max_length=200)] = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> DeployPage:
    """Every service's deploys, newest first: the company-wide feed."""
    return service.list_deploys(session, replace(filters, service=service_), page=page, per_page=per_page)


@router.get("/deploys/{deploy_id}", response_model=DeployDetail)
def get_deploy(deploy_id: IdPath, session: SessionDep) -> DeployDetail:
    """A deploy and its `events`: each status change, who made it, when and why."""
    return service.deploy_view(session, deploy_id)


@router.get("/deploys/{deploy_id}/changes", response_model=ChangeOut)
def deploy_changes(deploy_id: IdPath, session: SessionDep) -> ChangeOut:
    """The releases this deploy brought over what was live before it in its environment."""
    return service.changes_of(session, deploy_id)


@router.get("/services/{slug:path}/deploys", response_model=DeployPage)
def service_deploys(
    slug: str, session: SessionDep, filters: HistoryFilters, page: PageNo = 1, per_page: PerPage = 50
) -> DeployPage:
    return service.list_deploys(session, replace(filters, service=slug), page=page, per_page=per_page)


@router.get("/services/{slug:path}/live", response_model=LiveOut)
def live(request: Request, slug: str, session: SessionDep) -> LiveOut:
    """Per environment: the live version, image, digest, when and by whom; and the registry's newest image."""
    return service.live_of(session, slug, registry=runtime_of(request).registry)


@router.get("/matrix", response_model=MatrixPage)
def matrix(
    session: SessionDep,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: PageNo = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MatrixPage:
    return service.matrix(session, owner=owner, text=q, page=page, per_page=per_page)


@router.post("/approvals", response_model=ChangeRequestOut, status_code=201)
def request_approval(
    body: ApprovalIn, session: SessionDep, actor: ActorDep, clock: ClockDep
) -> ChangeRequestOut:
    """Ask to ship a version; `status` is `pending` when a second person must approve (tier-1
    production), else `not_required`. CI can wait on GET /approvals/{id}."""
    with session.begin():
        return service.ask_to_deploy(session, actor, at=clock.now(), **body.model_dump())


@router.get("/approvals", response_model=list[ChangeRequestOut])
def list_approvals(
    session: SessionDep,
    status: RequestStatus = None,
    service_: Annotated[str | None, Query(alias="service", max_length=200)] = None,
) -> list[ChangeRequestOut]:
    """Change requests of every domain, newest first; `service` narrows them to one service's."""
    return access.change_requests(
        session,
        status=status,
        resource_type="service" if service_ else None,
        resource_key=service_,
        now=service.resources_now(session),
    )


@router.get("/approvals/{approval_id}", response_model=ChangeRequestOut)
def get_approval(approval_id: IdPath, session: SessionDep) -> ChangeRequestOut:
    return access.change_request(session, approval_id, now=service.resources_now(session))


def _decide(
    session: Session, actor: Actor, clock: Clock, approval_id: int, body: DecisionIn | None, *, approve: bool
) -> ChangeRequestOut:
    with session.begin():
        return rollouts.decide_change(
            session, actor, approval_id, approve=approve, reason=body.reason if body else None, at=clock.now()
        )


@router.post("/approvals/{approval_id}/approve", response_model=ChangeRequestOut)
def approve(
    approval_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep, body: DecisionIn | None = None
) -> ChangeRequestOut:
    """Judged against the service as it is now; the one who asked may not approve."""
    return _decide(session, actor, clock, approval_id, body, approve=True)


@router.post("/approvals/{approval_id}/reject", response_model=ChangeRequestOut)
def reject(
    approval_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep, body: DecisionIn | None = None
) -> ChangeRequestOut:
    return _decide(session, actor, clock, approval_id, body, approve=False)
