"""Rollout tables: a portal deploy run through its pipeline (`rollouts`), its steps, each step's log, the
append-only event stream of every change (`rollout_events`), and the freeze windows of environments.

Written by rollouts/store.py (rollouts, steps, logs, events) and rollouts/freezes.py only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from quarterdeck.db import Base, UTCDateTime

ACTIVE_STATES = "state IN ('running', 'waiting_approval', 'paused', 'rolling_back')"
"""states.ACTIVE, as SQL: the partial unique index allows one such rollout per service and environment."""
EventId = BigInteger().with_variant(Integer(), "sqlite")


class Rollout(Base):
    """One portal deploy of a release to an environment, run step by step through the exact pipeline
    it snapshotted when it started. `version` counts its changes: every change is one UPDATE guarded
    by it (store.py), so of two racing changes exactly one wins."""

    __tablename__ = "rollouts"
    __table_args__ = (
        Index(
            "ux_rollouts_one_active",
            "service_slug",
            "environment_id",
            unique=True,
            postgresql_where=text(ACTIVE_STATES),
            sqlite_where=text(ACTIVE_STATES),
        ),
        Index("ix_rollouts_service_env_state", "service_slug", "environment_id", "state"),
        CheckConstraint(
            "state IN ('queued', 'running', 'waiting_approval', 'paused', 'rolling_back', 'succeeded', "
            "'rolled_back', 'aborted', 'failed')",
            name="state",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    service_slug: Mapped[str] = mapped_column(String(200))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="RESTRICT"))
    environment: Mapped[str] = mapped_column(String(100))
    """The environment's slug (slugs never change)."""
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="RESTRICT"))
    release_version: Mapped[str] = mapped_column(String(128))
    image: Mapped[str | None] = mapped_column(String(500))
    deploy_id: Mapped[int | None] = mapped_column(ForeignKey("deploys.id", ondelete="SET NULL"), index=True)
    """The deploy record; None while queued (it is recorded when the rollout starts moving)."""
    baseline_version: Mapped[str | None] = mapped_column(String(128))
    """The version live in the environment when the rollout started (None: nothing was)."""
    service_tier: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    """The share of traffic (%) the new version takes now."""
    prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether the driver has prepared the new version (so there is something to roll back)."""
    promote_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    finish_as: Mapped[str | None] = mapped_column(String(20))
    """While rolling back: the final state it ends in (rolled_back after a failure, aborted)."""
    reason: Mapped[str] = mapped_column(Text, default="")
    """One sentence: why it paused, rolled back, failed or was aborted."""
    pipeline_id: Mapped[int] = mapped_column(Integer)
    pipeline_version: Mapped[int] = mapped_column(Integer)
    pipeline_digest: Mapped[str] = mapped_column(String(64))
    pipeline_name: Mapped[str] = mapped_column(String(100))
    pipeline_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    on_failure: Mapped[str] = mapped_column(String(20))
    bake_seconds: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[str] = mapped_column(String(320))
    started_by_kind: Mapped[str] = mapped_column(String(20))
    started_by_user_id: Mapped[int | None] = mapped_column(Integer)
    emergency_request_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RolloutStep(Base):
    """One step of a rollout as it runs: the pipeline step it carries out (`spec`), its state, when it
    ran, how much of that was spent working and how much waiting, and what it found (`detail`:
    analysis measurements, the approval asked for)."""

    __tablename__ = "rollout_steps"
    __table_args__ = (UniqueConstraint("rollout_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    runs: Mapped[int] = mapped_column(Integer, default=0)
    """How many times it was started (a retried step runs again)."""
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    waiting_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log_lines: Mapped[int] = mapped_column(Integer, default=0)
    """Lines kept in rollout_step_logs; past MAX_LOG_LINES the rest are counted in `log_dropped`."""
    log_dropped: Mapped[int] = mapped_column(Integer, default=0)


class RolloutStepLog(Base):
    """One line of a step's log (driver output, a command's output, the orchestrator's own notes)."""

    __tablename__ = "rollout_step_logs"
    __table_args__ = (Index("ix_rollout_step_logs_step", "rollout_id", "position", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    line: Mapped[str] = mapped_column(Text)


class RolloutEvent(Base):
    """Every change of a rollout, append-only, in the transaction of the change: state changes, step
    changes, analysis intervals, log lines, controls. Ids only grow, so a reader that saw up to id N
    asks for the events after N (the live page's SSE Last-Event-ID, `quarterdeck deploy --follow`)."""

    __tablename__ = "rollout_events"
    __table_args__ = (Index("ix_rollout_events_rollout", "rollout_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    type: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class FreezeWindow(Base):
    """A time when rollouts into an environment are refused: from `starts_at` to `ends_at`, once, or
    every week at the same times when `weekly` (then it lasts less than a week)."""

    __tablename__ = "freeze_windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    weekly: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
