"""Deploys JSON API: environments, deploy reports from CI, history, live versions, the matrix, approvals.

No `from __future__ import annotations`: FastAPI reads the union body type of `report_deploys`.
"""

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.access.schemas import ApprovalOut
from quarterdeck.db import retrying_on_race
from quarterdeck.deploys import service
from quarterdeck.deploys.schemas import (
    SLUG,
    ApprovalIn,
    ChangeOut,
    DecisionIn,
    DeployOut,
    DeployPage,
    DeployReport,
    EnvironmentIn,
    EnvironmentOut,
    LiveOut,
    MatrixPage,
    ReportResult,
)
from quarterdeck.deploys.service import DeployFilters
from quarterdeck.errors import Invalid
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, runtime_of

router = APIRouter(prefix="/api/v1", tags=["deploys"], dependencies=[Depends(reader)])
PageNo = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(ge=1, le=500)]
Status = Annotated[str | None, Query(pattern="^(running|succeeded|failed|rolled_back)$")]
MAX_BATCH = 1000


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
    if len(reports) > MAX_BATCH:
        raise Invalid(
            f"a batch holds at most {MAX_BATCH} reports, not {len(reports)}", code="deploys.batch_too_big"
        )
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
) -> DeployFilters:
    """The filters of every deploy history: the feed and a service's own."""
    return DeployFilters(None, environment, status, since, until)


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


@router.get("/deploys/{deploy_id}", response_model=DeployOut)
def get_deploy(deploy_id: IdPath, session: SessionDep) -> DeployOut:
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


@router.post("/approvals", response_model=ApprovalOut, status_code=201)
def request_approval(body: ApprovalIn, session: SessionDep, actor: ActorDep, clock: ClockDep) -> ApprovalOut:
    """Ask to ship a version; `status` is `pending` when a second person must approve (tier-1
    production), else `not_required`. CI can wait on GET /approvals/{id}."""
    with session.begin():
        return service.request_approval(session, actor, at=clock.now(), **body.model_dump())


@router.get("/approvals", response_model=list[ApprovalOut])
def list_approvals(
    session: SessionDep,
    status: Annotated[str | None, Query(pattern="^(pending|approved|rejected|not_required)$")] = None,
    service_: Annotated[str | None, Query(alias="service", max_length=200)] = None,
) -> list[ApprovalOut]:
    return service.approvals(session, status=status, service=service_)


@router.get("/approvals/{approval_id}", response_model=ApprovalOut)
def get_approval(approval_id: IdPath, session: SessionDep) -> ApprovalOut:
    return service.approval(session, approval_id)


@router.post("/approvals/{approval_id}/approve", response_model=ApprovalOut)
def approve(
    approval_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep, body: DecisionIn | None = None
) -> ApprovalOut:
    with session.begin():
        reason = body.reason if body else None
        return service.decide_approval(
            session, actor, approval_id, approve=True, reason=reason, at=clock.now()
        )


@router.post("/approvals/{approval_id}/reject", response_model=ApprovalOut)
def reject(
    approval_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep, body: DecisionIn | None = None
) -> ApprovalOut:
    with session.begin():
        reason = body.reason if body else None
        return service.decide_approval(
            session, actor, approval_id, approve=False, reason=reason, at=clock.now()
        )
