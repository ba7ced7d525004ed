"""The one way a deploy's status changes: a guarded UPDATE and its event row, in the caller's transaction.

Reports from CI and, later, pipeline steps all move deploys through `move`; new deploys get their first
event from `record_created`. The allowed moves are states.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.orm import Session

from quarterdeck.db import bulk_insert
from quarterdeck.deploys.models import Deploy, DeployEvent
from quarterdeck.deploys.states import DeployStatus, can_move
from quarterdeck.errors import InvalidTransition, NotFound, QuarterdeckError


def move(
    session: Session,
    deploy_id: int,
    *,
    from_: DeployStatus,
    to: DeployStatus,
    finished_at: datetime | None,
    at: datetime,
    actor: str,
    reason: str,
    notes: str | None = None,
) -> Deploy:
    """Move a deploy from the status its caller saw (`from_`) to `to`: one UPDATE ... WHERE id = :id
    AND status = :from, and a deploy_events row, or nothing at all. Of racing moves of one deploy
    exactly one wins; the others raise InvalidTransition naming the status the deploy has now.
    The deploy as it is after the move."""
    if not can_move(from_, to):
        raise refusal(session, deploy_id, from_, to)
    values: dict[str, Any] = {"status": to.value, "finished_at": finished_at, "version": Deploy.version + 1}
    if notes:
        values["notes"] = notes
    changed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.status == from_.value)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:
        raise refusal(session, deploy_id, from_, to)
    session.execute(
        insert(DeployEvent).values(
            deploy_id=deploy_id,
            from_status=from_.value,
            to_status=to.value,
            at=at,
            actor=actor,
            reason=reason,
        )
    )
    return session.get_one(Deploy, deploy_id, populate_existing=True)


def record_created(
    session: Session, created: Sequence[tuple[int, DeployStatus, str]], *, at: datetime, actor: str
) -> None:
    """The first event of each new deploy (id, status, reason): from nothing to the status it was
    recorded in."""
    rows = [
        {
            "deploy_id": deploy_id,
            "from_status": None,
            "to_status": status.value,
            "at": at,
            "actor": actor,
            "reason": reason,
        }
        for deploy_id, status, reason in created
    ]
    bulk_insert(session, DeployEvent.__table__, rows)  # type: ignore[arg-type]


def refusal(session: Session, deploy_id: int, from_: DeployStatus, to: DeployStatus) -> QuarterdeckError:
    """Why a deploy seen in `from_` cannot become `to`, naming the status it has now."""
    found = session.execute(select(Deploy.external_id, Deploy.status).where(Deploy.id == deploy_id)).first()
    if found is None:
        return NotFound(f"no deploy {deploy_id}", code="deploys.unknown_deploy")
    name, status = found
    message = f"deploy {name!r} is {status}; it cannot become {to.value}"
    details = {"from": status, "to": to.value}
    if status != from_.value:
        message += f" (it was {from_.value} when this change was asked, and another change came first)"
        details["expected"] = from_.value
    return InvalidTransition(message, code="deploys.bad_transition", details=details)
