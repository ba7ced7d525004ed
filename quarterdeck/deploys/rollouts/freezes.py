"""Freeze windows: times when rollouts into an environment are refused (a release weekend, the end of
the quarter), once or every week. Admins add and remove them; starting a rollout asks `freeze_at`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, Resource
from quarterdeck.db import hold_lock
from quarterdeck.deploys import queries
from quarterdeck.deploys.models import Environment
from quarterdeck.deploys.reading import find_environment
from quarterdeck.deploys.rollouts.models import FreezeWindow
from quarterdeck.deploys.rollouts.schemas import FreezeIn, FreezeOut
from quarterdeck.errors import Invalid, NotFound

WEEK = timedelta(days=7)
MAX_WINDOWS = 200
"""Windows kept per environment, at most."""


def occurrence(window: FreezeWindow, at: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) of the window's occurrence that covers `at`, or None. Pure."""
    if at < window.starts_at:
        return None
    if not window.weekly:
        return (window.starts_at, window.ends_at) if at < window.ends_at else None
    weeks = (at - window.starts_at) // WEEK
    start = window.starts_at + weeks * WEEK
    end = start + (window.ends_at - window.starts_at)
    return (start, end) if at < end else None


def next_start(window: FreezeWindow, at: datetime) -> datetime | None:
    """When the window next starts (the current occurrence's start, if it covers `at`); None if never."""
    current = occurrence(window, at)
    if current is not None:
        return current[0]
    if at < window.starts_at:
        return window.starts_at
    if not window.weekly:
        return None
    weeks = (at - window.starts_at) // WEEK + 1
    start: datetime = window.starts_at + weeks * WEEK
    return start


def freeze_out(window: FreezeWindow, environment: str, at: datetime) -> FreezeOut:
    return FreezeOut(
        id=window.id,
        environment=environment,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        weekly=window.weekly,
        reason=window.reason,
        created_by=window.created_by,
        created_at=window.created_at,
        active=occurrence(window, at) is not None,
        next_start=next_start(window, at),
    )


def freeze_at(session: Session, env: Environment, at: datetime) -> FreezeWindow | None:
    """The window that freezes `env` at `at`, if one does."""
    for window in session.scalars(
        select(FreezeWindow).where(FreezeWindow.environment_id == env.id).order_by(FreezeWindow.id)
    ):
        if occurrence(window, at) is not None:
            return window
    return None


def words(window: FreezeWindow, env: Environment, at: datetime) -> str:
    """`staging is frozen until 2026-12-24 18:00 UTC (freeze 3: release weekend)`."""
    current = occurrence(window, at)
    until = current[1] if current else window.ends_at
    every = ", every week" if window.weekly else ""
    return (
        f"{env.slug} is frozen until {until:%Y-%m-%d %H:%M} UTC (freeze window {window.id}{every}: "
        f"{window.reason})"
    )


def _check(body: FreezeIn) -> None:
    if body.ends_at <= body.starts_at:
        raise Invalid(
            "ends_at is not after starts_at: a freeze window ends after it starts",
            code="freezes.bad_times",
            details=[{"field": "ends_at", "message": "not after starts_at"}],
        )
    if body.weekly and body.ends_at - body.starts_at >= WEEK:
        raise Invalid(
            "a weekly freeze window lasts less than a week",
            code="freezes.bad_times",
            details=[{"field": "ends_at", "message": "a week or more after starts_at"}],
        )


def add_freeze(
    session: Session, actor: Actor, environment: str, body: FreezeIn, *, at: datetime
) -> FreezeOut:
    """Freeze an environment from starts_at to ends_at (admins); audited."""
    env = find_environment(session, environment)
    access.require(actor, "settings.edit", Resource(type="environment", key=env.slug))
    _check(body)
    hold_lock(session, f"deploys.freezes.{env.id}")  # the count below and the insert, as one
    kept = session.scalars(select(FreezeWindow.id).where(FreezeWindow.environment_id == env.id)).all()
    if len(kept) >= MAX_WINDOWS:
        raise Invalid(
            f"{env.slug} has {len(kept)} freeze windows, the most kept: remove old ones first",
            code="freezes.too_many",
        )
    window = FreezeWindow(
        environment_id=env.id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        weekly=body.weekly,
        reason=body.reason,
        created_by=actor.label,
        created_at=at,
    )
    session.add(window)
    session.flush()
    out = freeze_out(window, env.slug, at)
    access.record(
        session,
        actor,
        "environment.freeze",
        target=("environment", env.slug),
        at=at,
        after=out.model_dump(mode="json", exclude={"active", "next_start"}),
    )
    return out


def remove_freeze(session: Session, actor: Actor, freeze_id: int, *, at: datetime) -> None:
    window = session.get(FreezeWindow, freeze_id)
    if window is None:
        raise NotFound(f"no freeze window {freeze_id}", code="freezes.unknown")
    env = session.get_one(Environment, window.environment_id)
    access.require(actor, "settings.edit", Resource(type="environment", key=env.slug))
    before = freeze_out(window, env.slug, at).model_dump(mode="json", exclude={"active", "next_start"})
    removed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(FreezeWindow).where(FreezeWindow.id == freeze_id)
    )
    if removed.rowcount != 1:  # another request removed it since it was read: that one is audited
        raise NotFound(f"no freeze window {freeze_id}", code="freezes.unknown")
    access.record(
        session, actor, "environment.unfreeze", target=("environment", env.slug), at=at, before=before
    )


def list_freezes(session: Session, *, environment: str | None = None, at: datetime) -> list[FreezeOut]:
    """The windows that are active or still to come (weekly ones always are), by next start."""
    envs = {env.id: env.slug for env in queries.environments(session)}
    query = select(FreezeWindow).order_by(FreezeWindow.starts_at, FreezeWindow.id)
    if environment is not None:
        query = query.where(FreezeWindow.environment_id == find_environment(session, environment).id)
    outs = [freeze_out(window, envs[window.environment_id], at) for window in session.scalars(query)]
    upcoming = [out for out in outs if out.next_start is not None]
    return sorted(upcoming, key=lambda out: (out.next_start or at, out.id))
