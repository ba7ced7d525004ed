"""Every statement that changes a rollout: the guarded move (one UPDATE ... WHERE id AND version AND
state, and its event row), step changes, log lines and events. The caller owns the transaction.

A step changes only together with a guarded move of its rollout, in the same transaction: the move is
the lock, so of two workers (or a worker and a person) acting on what they both read, one wins and the
other changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.orm import Session

from quarterdeck.deploys.rollouts.models import Rollout, RolloutEvent, RolloutStep, RolloutStepLog
from quarterdeck.deploys.rollouts.states import ACTIVE, RolloutState, StepState, can_move, can_move_step
from quarterdeck.errors import InvalidTransition, NotFound

MAX_LOG_LINES = 500
"""Lines kept per step; later ones are counted, not kept."""
MAX_LINE_CHARS = 2000
MAX_EVENT_LINES = 50
"""Log lines one event carries (the live page's feed); the step's log holds them all (up to the bound)."""
MAX_EVENT_BYTES = 16_384


class Raced(InvalidTransition):
    """The rollout changed since it was read (another worker, a person's control): nothing was written."""

    default_code = "rollouts.raced"


def get(session: Session, rollout_id: int, *, fresh: bool = False) -> Rollout:
    rollout = session.get(Rollout, rollout_id, populate_existing=fresh)
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}", code="rollouts.unknown")
    return rollout


def steps_of(session: Session, rollout_id: int) -> list[RolloutStep]:
    return list(
        session.scalars(
            select(RolloutStep).where(RolloutStep.rollout_id == rollout_id).order_by(RolloutStep.position)
        )
    )


def step_of(session: Session, rollout_id: int, position: int) -> RolloutStep:
    step = session.scalar(
        select(RolloutStep).where(RolloutStep.rollout_id == rollout_id, RolloutStep.position == position)
    )
    if step is None:
        raise NotFound(f"rollout {rollout_id} has no step {position + 1}", code="rollouts.unknown_step")
    return step


def bounded(payload: dict[str, Any]) -> dict[str, Any]:
    """An event payload no larger than MAX_EVENT_BYTES: long log lines and lists are cut first."""
    if len(json.dumps(payload, default=str)) <= MAX_EVENT_BYTES:
        return payload
    cut = dict(payload)
    for key, value in payload.items():
        if isinstance(value, list):
            cut[key] = value[-10:]
        elif isinstance(value, str) and len(value) > 1000:
            cut[key] = value[:1000] + " ..."
    cut["truncated"] = True
    if len(json.dumps(cut, default=str)) > MAX_EVENT_BYTES:
        return {"truncated": True, **{k: v for k, v in cut.items() if isinstance(v, int | float | bool)}}
    return cut


def add_event(
    session: Session, rollout_id: int, type_: str, payload: dict[str, Any], *, at: datetime
) -> None:
    session.execute(
        insert(RolloutEvent).values(rollout_id=rollout_id, at=at, type=type_, payload=bounded(payload))
    )


def move(
    session: Session,
    rollout: Rollout,
    *,
    to: RolloutState | None = None,
    at: datetime,
    reason: str = "",
    event: tuple[str, dict[str, Any]] | None = None,
    **values: Any,
) -> Rollout:
    """Change a rollout from the state and version it was read in: one guarded UPDATE, and its event
    row (a `state` event when the state changes, else `event`). Raises Raced (nothing written) when
    another change came first, InvalidTransition when the move is not allowed from its state."""
    from_ = RolloutState(rollout.state)
    target = to or from_
    if not can_move(from_, target):
        raise InvalidTransition(
            f"rollout {rollout.id} is {from_.value.replace('_', ' ')}; it cannot become "
            f"{target.value.replace('_', ' ')}",
            code="rollouts.bad_transition",
            details={"from": from_.value, "to": target.value},
        )
    changes = {"state": target.value, "version": Rollout.version + 1, "updated_at": at, **values}
    if reason and "reason" not in values:
        changes["reason"] = reason
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Rollout)
        .where(Rollout.id == rollout.id, Rollout.version == rollout.version, Rollout.state == from_.value)
        .values(changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        now = session.execute(select(Rollout.state, Rollout.version).where(Rollout.id == rollout.id)).first()
        state = now[0] if now else "gone"
        raise Raced(
            f"rollout {rollout.id} changed while this was being done (it is {state.replace('_', ' ')} now); "
            "nothing was changed: look again",
            details={"state": state, "expected_version": rollout.version},
        )
    if target is not from_:
        add_event(
            session, rollout.id, "state", {"from": from_.value, "to": target.value, "reason": reason}, at=at
        )
    if event is not None:
        add_event(session, rollout.id, event[0], event[1], at=at)
    return get(session, rollout.id, fresh=True)


def _spent(step: RolloutStep, at: datetime) -> float:
    return max(0.0, (at - step.state_since).total_seconds()) if step.state_since is not None else 0.0


def move_step(
    session: Session,
    step: RolloutStep,
    to: StepState,
    *,
    at: datetime,
    detail: dict[str, Any] | None = None,
    due_at: datetime | None = None,
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> RolloutStep:
    """Move a step (after its rollout's guarded move, in the same transaction), counting the time it
    spent in the state it leaves as waiting or active, and write its `step` event."""
    from_ = StepState(step.state)
    if from_ is not to and not can_move_step(from_, to):
        raise InvalidTransition(
            f"step {step.position + 1} ({step.kind}) is {from_.value}; it cannot become {to.value}",
            code="rollouts.bad_step_transition",
            details={"from": from_.value, "to": to.value},
        )
    spent = _spent(step, at)
    if from_ is StepState.WAITING:
        step.waiting_seconds += spent
    elif from_ is StepState.RUNNING:
        step.active_seconds += spent
    if from_ is StepState.PENDING and to is not StepState.SKIPPED:
        step.started_at = at
        step.runs += 1
    step.state = to.value
    step.state_since = at
    if to in (StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED):
        step.finished_at = at
        step.due_at = None
    if to is StepState.PENDING:
        step.started_at = step.finished_at = step.due_at = None
        step.active_seconds = step.waiting_seconds = 0.0
    if due_at is not None:
        step.due_at = due_at
    if detail is not None:
        step.detail = detail
    session.flush()
    if from_ is not to or note:
        payload: dict[str, Any] = {
            "step": step.position,
            "kind": step.kind,
            "from": from_.value,
            "to": to.value,
            "due_at": step.due_at.isoformat() if step.due_at else None,
            "note": note,
            **(extra or {}),
        }
        add_event(session, step.rollout_id, "step", payload, at=at)
    return step


def add_log(session: Session, step: RolloutStep, lines: Sequence[str], *, at: datetime) -> None:
    """Keep a step's log lines (up to MAX_LOG_LINES; later ones are counted) and tell the event stream."""
    lines = [line[:MAX_LINE_CHARS] for line in lines]
    if not lines:
        return
    room = max(0, MAX_LOG_LINES - step.log_lines)
    kept, dropped = lines[:room], len(lines) - min(room, len(lines))
    if kept:
        session.execute(
            insert(RolloutStepLog),
            [
                {"rollout_id": step.rollout_id, "position": step.position, "at": at, "line": line}
                for line in kept
            ],
        )
    step.log_lines += len(kept)
    step.log_dropped += dropped
    session.flush()
    add_event(
        session,
        step.rollout_id,
        "log",
        {"step": step.position, "lines": kept[-MAX_EVENT_LINES:], "dropped": dropped},
        at=at,
    )


def log_of(session: Session, rollout_id: int, position: int) -> list[str]:
    return list(
        session.scalars(
            select(RolloutStepLog.line)
            .where(RolloutStepLog.rollout_id == rollout_id, RolloutStepLog.position == position)
            .order_by(RolloutStepLog.id)
        )
    )


def logs_of(session: Session, rollout_id: int) -> dict[int, list[str]]:
    """Every step's log of a rollout in one query: step position -> its lines, oldest first."""
    logs: dict[int, list[str]] = {}
    rows = session.execute(
        select(RolloutStepLog.position, RolloutStepLog.line)
        .where(RolloutStepLog.rollout_id == rollout_id)
        .order_by(RolloutStepLog.id)
    )
    for position, line in rows:
        logs.setdefault(position, []).append(line)
    return logs


def events_after(session: Session, rollout_id: int, after: int, *, limit: int) -> list[RolloutEvent]:
    return list(
        session.scalars(
            select(RolloutEvent)
            .where(RolloutEvent.rollout_id == rollout_id, RolloutEvent.id > after)
            .order_by(RolloutEvent.id)
            .limit(limit)
        )
    )


def active_for(session: Session, service: str, environment_id: int) -> Rollout | None:
    return session.scalar(
        select(Rollout).where(
            Rollout.service_slug == service,
            Rollout.environment_id == environment_id,
            Rollout.state.in_([state.value for state in ACTIVE]),
        )
    )


def queued_for(session: Session, service: str, environment_id: int) -> list[Rollout]:
    return list(
        session.scalars(
            select(Rollout)
            .where(
                Rollout.service_slug == service,
                Rollout.environment_id == environment_id,
                Rollout.state == RolloutState.QUEUED.value,
            )
            .order_by(Rollout.id)
        )
    )


def skip_steps(session: Session, steps: Iterable[RolloutStep], *, at: datetime, note: str) -> None:
    for step in steps:
        if StepState(step.state) in (StepState.PENDING, StepState.WAITING):
            move_step(session, step, StepState.SKIPPED, at=at, note=note)
