"""Two-person approvals: a change that the policy says needs a second person waits for their yes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access import audit, policy
from quarterdeck.access.models import Approval
from quarterdeck.access.schemas import Actor, ApprovalOut, Resource
from quarterdeck.errors import InvalidTransition, NotFound

PENDING, APPROVED, REJECTED, NOT_REQUIRED = "pending", "approved", "rejected", "not_required"


def approval_out(row: Approval) -> ApprovalOut:
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
        status=row.status,
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
    session: Session, actor: Actor, approval_id: int, *, approve: bool, reason: str | None, at: datetime
) -> Approval:
    """Approve or reject a pending request. The one who asked may not decide it."""
    row = get_approval(session, approval_id)
    policy.require(actor, "approval.decide", resource_of(row))
    if row.status != PENDING:
        raise InvalidTransition(
            f"approval request {row.id} is {row.status.replace('_', ' ')}: nothing to decide",
            code="approval.not_pending",
            details={"status": row.status},
        )
    row.status = APPROVED if approve else REJECTED
    row.decided_by, row.decided_at, row.reason = actor.label, at, reason
    session.flush()
    audit.record(
        session,
        actor,
        "approval.approve" if approve else "approval.reject",
        target=("approval", str(row.id)),
        at=at,
        before={"status": PENDING},
        after={"status": row.status},
        note=reason,
    )
    return row


def list_approvals(
    session: Session, *, status: str | None = None, service: str | None = None
) -> list[Approval]:
    query = select(Approval).order_by(Approval.id.desc()).limit(200)
    if status:
        query = query.where(Approval.status == status)
    if service:
        query = query.where(Approval.service_slug == service)
    return list(session.scalars(query).all())
