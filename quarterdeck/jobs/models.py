"""Job tables: `jobs` (one row per job: what to run, when, who holds it) and `job_events` (every
state change, append-only)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from quarterdeck.db import Base, UTCDateTime

HELD_STATES = "state IN ('running', 'failed', 'cancelled')"
# SQLite numbers rows itself only for an INTEGER primary key; PostgreSQL gets room for decades of jobs.
JobId = BigInteger().with_variant(Integer(), "sqlite")


class Job(Base):
    """A unit of durable work. `attempts` counts attempts that ended without success (an error, or a
    lease that expired); the one running is number `attempts + 1`."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Claiming: the pending jobs in due order, id breaking ties, so a claim reads the first rows of
        # a small index and sorts nothing, however many jobs are due or done.
        Index(
            "ix_jobs_pending_due",
            "due_at",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # Reaping: running jobs by lease expiry.
        Index(
            "ix_jobs_running_lease",
            "lease_expires_at",
            postgresql_where=text("state = 'running'"),
            sqlite_where=text("state = 'running'"),
        ),
        # Queue depth per kind, for the admin page and /metrics. Not over pending jobs: the planner
        # would take it for claims (state and kind match) and sort every pending job to find the first.
        Index(
            "ix_jobs_held_kind",
            "state",
            "kind",
            postgresql_where=text(HELD_STATES),
            sqlite_where=text(HELD_STATES),
        ),
        CheckConstraint("state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')", name="state"),
    )

    id: Mapped[int] = mapped_column(JobId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[Any] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EventReason(StrEnum):
    """Why a job changed state; the failure reasons are what /metrics counts as failures."""

    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    ERROR = "error"
    PERMANENT_FAILURE = "permanent_failure"
    RETRY_LATER = "retry_later"
    LEASE_EXPIRED = "lease_expired"
    RELEASED = "released"
    RETRIED = "retried"
    CANCELLED = "cancelled"


FAILURE_REASONS = frozenset({EventReason.ERROR, EventReason.PERMANENT_FAILURE, EventReason.LEASE_EXPIRED})


class JobEvent(Base):
    """One move of one job: from, to, when, why (and the error text or who asked, in `note`)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(JobId, primary_key=True)
    job_id: Mapped[int] = mapped_column(JobId, ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(40), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
