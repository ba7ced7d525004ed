"""Two-person approvals: a change that the policy says needs a second person waits for their yes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from quarterdeck.access import audit, policy
from quarterdeck.access.models import Approval
from quarterdeck.access.schemas import Actor, ApprovalOut, Resource
from quarterdeck.errors import InvalidTransition, NotFound

PENDING, APPROVED, REJECTED, NOT_REQUIRED = "pending", "approved", "rejected", "not_required"


def effective_status(row: Approval, current: Resource | None) -> str:
    """The request's status against the service as it is now (`current`): a request recorded as not
    needing a second person needs one after all once the service is tier 1 in production again."""
    if row.status == NOT_REQUIRED and current is not None and policy.needs_second_approval(current):
        return PENDING
    return row.status


def approval_out(row: Approval, current: Resource | None = None) -> ApprovalOut:
    return ApprovalOut(
        id=row.id,
        action=row.action,
        service=row.service_slug,
        team=row.team_slug,
        tier=row.tier,
        environment=row.environment,
        production=row.production,
        version=row.version,
        summary=row.summary,
        status=effective_status(row, current),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        reason=row.reason,
    )


def resource_of(row: Approval) -> Resource:
    return Resource(
        type="service",
        key=row.service_slug,
        team=row.team_slug,
        tier=row.tier,
        environment=row.environment,
        production=row.production,
        owner_user_id=row.requested_by_user_id,
    )


def request_approval(
    session: Session, actor: Actor, resource: Resource, *, version: str | None, summary: str, at: datetime
) -> Approval:
    """Ask to ship `version` of a service to an environment. Changes the two-person rule does not
    cover are recorded as not needing approval, so callers can always wait on the same answer."""
    policy.require(actor, "approval.request", resource)
    row = Approval(
        action="deploy",
        service_slug=resource.key,
        team_slug=resource.team,
        tier=resource.tier,
        environment=resource.environment or "",
        production=resource.production,
        version=version,
        summary=summary,
        status=PENDING if policy.needs_second_approval(resource) else NOT_REQUIRED,
        requested_by=actor.label,
        requested_by_user_id=actor.user_id,
        requested_at=at,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "approval.request",
        target=("approval", str(row.id)),
        at=at,
        after=approval_out(row).model_dump(mode="json"),
    )
    return row


def get_approval(session: Session, approval_id: int) -> Approval:
    row = session.get(Approval, approval_id)
    if row is None:
        raise NotFound(f"no approval request {approval_id}", code="approval.unknown")
    return row


def decide(
    session: Session,
    actor: Actor,
    approval_id: int,
    *,
    approve: bool,
    reason: str | None,
    at: datetime,
    current: Resource | None = None,
) -> Approval:
    """Approve or reject a request that needs a second person, judged against the service as it is
    now (`current`: its owning team and tier today; the request's own record when it is gone). The
    one who asked may not decide it. The decision is one guarded UPDATE: of two racing deciders
    exactly one wins, the other is told the request is decided already."""
    row = get_approval(session, approval_id)
    now_resource = replace(current or resource_of(row), owner_user_id=row.requested_by_user_id)
    policy.require(actor, "approval.decide", now_resource)
    status = effective_status(row, now_resource)
    if status != PENDING:
        raise _decided_already(row, status)
    decided = APPROVED if approve else REJECTED
    changed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Approval)
        .where(Approval.id == row.id, Approval.status == row.status)
        .values(
            status=decided,
            decided_by=actor.label,
            decided_at=at,
            reason=reason,
            team_slug=now_resource.team,
            tier=now_resource.tier,
            production=now_resource.production,
        )
    )
    session.refresh(row)
    if changed.rowcount != 1:
        raise _decided_already(row, row.status)
    audit.record(
        session,
        actor,
        "approval.approve" if approve else "approval.reject",
        target=("approval", str(row.id)),
        at=at,
        before={"status": status},
        after={"status": row.status},
        note=reason,
    )
    return row


def _decided_already(row: Approval, status: str) -> InvalidTransition:
    return InvalidTransition(
        f"approval request {row.id} is {status.replace('_', ' ')}: nothing to decide",
        code="approval.not_pending",
        details={"status": status},
    )


def list_approvals(
    session: Session, *, status: str | None = None, service: str | None = None
) -> list[Approval]:
    """Newest first. Asked for `pending`, it also gives the requests recorded as not needing a second
    person, which may need one now (see effective_status): the caller judges them."""
    query = select(Approval).order_by(Approval.id.desc()).limit(200)
    if status == PENDING:
        query = query.where(Approval.status.in_([PENDING, NOT_REQUIRED]))
    elif status:
        query = query.where(Approval.status == status)
    if service:
        query = query.where(Approval.service_slug == service)
    return list(session.scalars(query).all())
