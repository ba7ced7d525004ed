"""What the job runner shows other layers: jobs, their events, and the queue's figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from quarterdeck.jobs.states import JobState


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    payload: Any
    state: JobState
    due_at: datetime
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    idempotency_key: str
    last_error: str | None
    version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_state: JobState
    to_state: JobState
    reason: str
    note: str | None
    at: datetime


class KindStats(BaseModel):
    kind: str
    depth: dict[JobState, int]
    """Jobs per state, succeeded ones left out: they are history, not queue."""
    oldest_due_lag_seconds: float | None
    """How long the oldest due job has been waiting for a worker; None when none is waiting."""
    failures: int
    """Failed attempts ever (errors, permanent failures, expired leases)."""


class QueueStats(BaseModel):
    at: datetime
    kinds: list[KindStats]
    oldest_due_lag_seconds: float | None
