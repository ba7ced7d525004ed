"""The job queue for operators: what is waiting, running and parked, and retrying or cancelling a job.

Admins only; every move is audited. The rules of jobs themselves live in quarterdeck.jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from quarterdeck import jobs
from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor

__all__ = ["JobDetail", "JobsOverview", "cancel_job", "job_detail", "jobs_overview", "retry_job"]


@dataclass(frozen=True)
class JobsOverview:
    items: list[jobs.JobOut]
    stats: jobs.QueueStats


@dataclass(frozen=True)
class JobDetail:
    job: jobs.JobOut
    events: list[jobs.JobEventOut]


def jobs_overview(
    session: Session,
    actor: Actor,
    *,
    state: jobs.JobState | None,
    kind: str | None,
    now: datetime,
    limit: int = 100,
) -> JobsOverview:
    access.require(actor, "admin")
    return JobsOverview(
        jobs.list_jobs(session, state=state, kind=kind, limit=limit), jobs.queue_stats(session, now)
    )


def job_detail(session: Session, actor: Actor, job_id: int) -> JobDetail:
    access.require(actor, "admin")
    return JobDetail(jobs.get_job(session, job_id), jobs.job_events(session, job_id))


def retry_job(session: Session, actor: Actor, job_id: int, *, now: datetime) -> jobs.JobOut:
    """Run a parked or cancelled job again now, with its attempts afresh."""
    access.require(actor, "admin")
    before = jobs.get_job(session, job_id)
    after = jobs.retry(session, job_id, now)
    _audit(session, actor, "job.retry", before, after, now)
    return after


def cancel_job(session: Session, actor: Actor, job_id: int, *, now: datetime) -> jobs.JobOut:
    """Stop a pending or parked job from running; a running one's writes are not kept."""
    access.require(actor, "admin")
    before = jobs.get_job(session, job_id)
    after = jobs.cancel(session, job_id, now)
    _audit(session, actor, "job.cancel", before, after, now)
    return after


def _audit(
    session: Session, actor: Actor, action: str, before: jobs.JobOut, after: jobs.JobOut, now: datetime
) -> None:
    access.record(
        session,
        actor,
        action,
        target=("job", str(after.id)),
        at=now,
        before={"state": before.state.value, "attempts": before.attempts},
        after={"state": after.state.value, "attempts": after.attempts},
        note=after.kind,
    )
