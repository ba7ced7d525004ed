"""Read-only figures of the queue for the admin page and /metrics: depth, waiting, failures, lag."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, extract, func, literal_column, select
from sqlalchemy.orm import Session

from quarterdeck.db import dialect_name
from quarterdeck.jobs.models import FAILURE_REASONS
from quarterdeck.jobs.states import JobState
from quarterdeck.jobs.store import at, events, is_, jobs

HELD = (JobState.RUNNING, JobState.FAILED, JobState.CANCELLED)
"""The states of the ix_jobs_held_kind index (pending jobs have an index of their own)."""


def next_due(session: Session, kinds: Sequence[str]) -> datetime | None:
    """When the earliest pending job of these kinds is due: how long an idle worker may sleep."""
    statement = select(func.min(jobs.c.due_at)).where(is_(JobState.PENDING), jobs.c.kind.in_(kinds))
    found: datetime | None = session.execute(statement).scalar_one_or_none()
    return found


def depth(session: Session) -> list[tuple[str, JobState, int]]:
    """How many jobs of each kind are in each state but succeeded: (kind, state, count). Succeeded jobs
    are history, not queue. Pending jobs are counted apart so each count reads a partial index."""
    pending = (
        select(jobs.c.kind, jobs.c.state, func.count())
        .where(is_(JobState.PENDING))
        .group_by(jobs.c.kind, jobs.c.state)
    )
    held = (
        select(jobs.c.kind, jobs.c.state, func.count())
        .where(jobs.c.state.in_([literal_column(f"'{state.value}'") for state in HELD]))
        .group_by(jobs.c.kind, jobs.c.state)
    )
    rows = [*session.execute(pending), *session.execute(held)]
    return sorted((kind, JobState(state), int(count)) for kind, state, count in rows)


def oldest_due(session: Session, now: datetime) -> dict[str, datetime]:
    """Per kind, the due time of the oldest job that is due and still waiting for a worker."""
    statement = (
        select(jobs.c.kind, func.min(jobs.c.due_at))
        .where(is_(JobState.PENDING), jobs.c.due_at <= at(now))
        .group_by(jobs.c.kind)
    )
    return {kind: due for kind, due in session.execute(statement)}


def failures(session: Session) -> dict[str, int]:
    """Failed attempts per kind since the start (errors, permanent failures, expired leases): a count
    that only grows, as a Prometheus counter must, because job_events is append-only."""
    statement = (
        select(jobs.c.kind, func.count())
        .select_from(events.join(jobs, events.c.job_id == jobs.c.id))
        .where(events.c.reason.in_([reason.value for reason in FAILURE_REASONS]))
        .group_by(jobs.c.kind)
    )
    return {kind: int(count) for kind, count in session.execute(statement)}


def start_lag(session: Session, since: datetime) -> dict[str, tuple[float, float, int]]:
    """Per kind, of the attempts started since `since`: mean and largest seconds from due to started,
    and how many, to the millisecond (SQLite's julianday() is a day count in a double: finer digits
    are noise). Timestamp arithmetic is the one thing the dialects spell differently."""
    if dialect_name(session) == "postgresql":
        seconds: ColumnElement[Any] = extract("epoch", jobs.c.started_at - jobs.c.due_at)
    else:
        seconds = (func.julianday(jobs.c.started_at) - func.julianday(jobs.c.due_at)) * 86400.0
    statement = (
        select(jobs.c.kind, func.avg(seconds), func.max(seconds), func.count())
        .where(jobs.c.started_at >= at(since), jobs.c.started_at.is_not(None))
        .group_by(jobs.c.kind)
    )
    return {
        kind: (round(float(mean), 3), round(float(largest), 3), int(count))
        for kind, mean, largest, count in session.execute(statement)
    }
