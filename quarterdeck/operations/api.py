"""The job queue over JSON, for operators' scripts: list, one job with its events, retry, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from quarterdeck import jobs
from quarterdeck.access.deps import ActorDep, reader
from quarterdeck.operations import service
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], dependencies=[Depends(reader)])


class JobsPage(BaseModel):
    items: list[jobs.JobOut]
    stats: jobs.QueueStats


class JobWithEvents(BaseModel):
    job: jobs.JobOut
    events: list[jobs.JobEventOut]


@router.get("", response_model=JobsPage)
def list_jobs(
    session: SessionDep,
    actor: ActorDep,
    clock: ClockDep,
    state: jobs.JobState | None = None,
    kind: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JobsPage:
    found = service.jobs_overview(session, actor, state=state, kind=kind, now=clock.now(), limit=limit)
    return JobsPage(items=found.items, stats=found.stats)


@router.get("/{job_id}", response_model=JobWithEvents)
def get_job(job_id: IdPath, session: SessionDep, actor: ActorDep) -> JobWithEvents:
    found = service.job_detail(session, actor, job_id)
    return JobWithEvents(job=found.job, events=found.events)


@router.post("/{job_id}/retry", response_model=jobs.JobOut)
def retry_job(job_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep) -> jobs.JobOut:
    with session.begin():
        return service.retry_job(session, actor, job_id, now=clock.now())


@router.post("/{job_id}/cancel", response_model=jobs.JobOut)
def cancel_job(job_id: IdPath, session: SessionDep, actor: ActorDep, clock: ClockDep) -> jobs.JobOut:
    with session.begin():
        return service.cancel_job(session, actor, job_id, now=clock.now())
