"""Job use cases for admin pages, the API and the CLI. No permission checks here: the caller (a
higher layer) checks who may do what. The caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.jobs import figures, store
from quarterdeck.jobs.models import Job, JobEvent
from quarterdeck.jobs.schemas import JobEventOut, JobOut, KindStats, QueueStats
from quarterdeck.jobs.states import JobState

MAX_LIST = 500


def enqueue(
    session: Session,
    kind: str,
    payload: Any,
    *,
    now: datetime,
    due_at: datetime | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = store.DEFAULT_MAX_ATTEMPTS,
) -> JobOut:
    """Add a job in the caller's transaction: it exists (and workers hear of it) only if that commits.

    Idempotent on `idempotency_key`: enqueueing again returns the job already there, whatever its
    state. Without a key, one is made from the kind and a random UUID; pass your own (say
    "catalog.sync:source-7:2026-12-03T10:00") whenever a retried request must not add a second job.
    """
    job_id, _ = store.enqueue(
        session,
        kind,
        payload,
        now=now,
        due_at=due_at,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
    )
    return get_job(session, job_id)


def get_job(session: Session, job_id: int) -> JobOut:
    return JobOut.model_validate(store.get(session, job_id))


def list_jobs(
    session: Session, *, state: JobState | None = None, kind: str | None = None, limit: int = 50
) -> list[JobOut]:
    """Newest first (by due time)."""
    query = select(Job).order_by(Job.due_at.desc(), Job.id.desc()).limit(min(max(limit, 1), MAX_LIST))
    if state is not None:
        query = query.where(Job.state == state.value)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return [JobOut.model_validate(job) for job in session.scalars(query)]


def job_events(session: Session, job_id: int) -> list[JobEventOut]:
    store.get(session, job_id)
    query = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    return [JobEventOut.model_validate(event) for event in session.scalars(query)]


def retry(session: Session, job_id: int, now: datetime) -> JobOut:
    """Run a parked or cancelled job again, now, with its attempts afresh. Retrying a job that is
    pending, running or succeeded is an InvalidTransition that names its state."""
    store.retry_now(session, job_id, now)
    return get_job(session, job_id)


def cancel(session: Session, job_id: int, now: datetime) -> JobOut:
    """Stop a job from running (again). A running job's handler finishes, but nothing it wrote is kept."""
    store.cancel(session, job_id, now)
    return get_job(session, job_id)


def queue_stats(session: Session, now: datetime) -> QueueStats:
    depth: dict[str, dict[JobState, int]] = {}
    for kind, state, count in figures.depth(session):
        depth.setdefault(kind, {})[state] = count
    oldest = figures.oldest_due(session, now)
    failures = figures.failures(session)
    kinds = sorted(set(depth) | set(oldest) | set(failures))
    stats = [
        KindStats(
            kind=kind,
            depth=depth.get(kind, {}),
            oldest_due_lag_seconds=(now - oldest[kind]).total_seconds() if kind in oldest else None,
            failures=failures.get(kind, 0),
        )
        for kind in kinds
    ]
    lags = [k.oldest_due_lag_seconds for k in stats if k.oldest_due_lag_seconds is not None]
    return QueueStats(at=now, kinds=stats, oldest_due_lag_seconds=max(lags) if lags else None)
