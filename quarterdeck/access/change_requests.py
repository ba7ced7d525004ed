"""Change requests: a change the two-person rule covers waits for a second person's yes.

Any domain asks, naming its own action (a deploy, a production flag change, a pipeline override) and
the resource the policy judges. Whether a change needs a second person is decided when it is made,
against the resource as it is now: the domain that owns the resource says what it is now
(`ResourcesNow`); a request whose resource nobody can say is judged by its own record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from quarterdeck.access import audit, policy
from quarterdeck.access.models import ChangeRequest
from quarterdeck.access.schemas import Actor, ChangeRequestIn, ChangeRequestOut, Resource
from quarterdeck.errors import Invalid, InvalidTransition, NotFound

PENDING, APPROVED, REJECTED, NOT_REQUIRED = "pending", "approved", "rejected", "not_required"
ACTION = re.compile(r"^[a-z][a-z0-9_.-]{0,49}$")
LISTED = 200

ResourcesNow = Callable[[Sequence[ChangeRequestOut]], Mapping[int, Resource]]
"""Given requests as recorded, the resource each one is about as it is now, by request id."""


def effective_status(recorded: str, current: Resource | None) -> str:
    """The request's status against its resource as it is now (`current`): a request recorded as not
    needing a second person needs one after all once the service is tier 1 in production again."""
    if recorded == NOT_REQUIRED and current is not None and policy.needs_second_approval(current):
        return PENDING
    return recorded


def _out(row: ChangeRequest, current: Resource | None = None) -> ChangeRequestOut:
    return ChangeRequestOut(
        id=row.id,
        action=row.action,
        resource_type=row.resource_type,
        resource_key=row.resource_key,
        service=row.resource_key if row.resource_type == "service" else None,
        team=row.team_slug,
        tier=row.tier,
        environment=row.environment,
        production=row.production,
        version=row.version,
        summary=row.summary,
        details=dict(row.details or {}),
        status=effective_status(row.status, current),
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        reason=row.reason,
    )


def _recorded(row: ChangeRequest) -> Resource:
    """The resource as it was when the request was made (or last decided)."""
    return Resource(
        type=row.resource_type,
        key=row.resource_key,
        team=row.team_slug,
        tier=row.tier,
        environment=row.environment or None,
        production=row.production,
    )


def _judged(
    rows: Sequence[ChangeRequest], now: ResourcesNow | None
) -> list[tuple[ChangeRequest, Resource, ChangeRequestOut]]:
    """Each request with the resource it is judged against (as it is now, else as recorded), and its view."""
    current = now([_out(row) for row in rows]) if now is not None and rows else {}
    judged = []
    for row in rows:
        found = current.get(row.id)
        resource = found or _recorded(row)
        judged.append((row, replace(resource, owner_user_id=row.requested_by_user_id), _out(row, found)))
    return judged


def _check(request: ChangeRequestIn) -> None:
    problems = []
    if not ACTION.match(request.action):
        problems.append({"field": "action", "message": "a lower-case name such as flag.change, 50 at most"})
    if not request.resource.type or len(request.resource.type) > 50:
        problems.append({"field": "resource.type", "message": "between 1 and 50 characters"})
    if not request.resource.key or len(request.resource.key) > 200:
        problems.append({"field": "resource.key", "message": "between 1 and 200 characters"})
    if len(request.summary) > 2000:
        problems.append({"field": "summary", "message": "2000 characters at most"})
    if problems:
        first = problems[0]
        raise Invalid(f"{first['field']}: {first['message']}", code="approval.invalid", details=problems)


def ask_change(session: Session, actor: Actor, request: ChangeRequestIn, *, at: datetime) -> ChangeRequestOut:
    """Ask before making a change. Changes the two-person rule does not cover are recorded as not
    needing approval, so every caller can wait on the same answer."""
    _check(request)
    resource = request.resource
    policy.require(actor, "approval.request", resource)
    details = dict(request.details)
    version = details.get("version")
    row = ChangeRequest(
        action=request.action,
        resource_type=resource.type,
        resource_key=resource.key,
        service_slug=resource.key,
        team_slug=resource.team,
        tier=resource.tier,
        environment=resource.environment or "",
        production=resource.production,
        version=version if isinstance(version, str) else None,
        details=details,
        summary=request.summary,
        status=PENDING if request.needs_decision or policy.needs_second_approval(resource) else NOT_REQUIRED,
        requested_by=actor.label,
        requested_by_user_id=actor.user_id,
        requested_at=at,
    )
    session.add(row)
    session.flush()
    answer = _out(row)
    audit.record(
        session,
        actor,
        "approval.request",
        target=("approval", str(row.id)),
        at=at,
        after=answer.model_dump(mode="json"),
    )
    return answer


def _row(session: Session, request_id: int) -> ChangeRequest:
    row = session.get(ChangeRequest, request_id)
    if row is None:
        raise NotFound(f"no approval request {request_id}", code="approval.unknown")
    return row


def change_request(session: Session, request_id: int, *, now: ResourcesNow | None = None) -> ChangeRequestOut:
    [(_, _, answer)] = _judged([_row(session, request_id)], now)
    return answer


def _listed(
    session: Session, status: str | None, resource_type: str | None, resource_key: str | None
) -> list[ChangeRequest]:
    """Newest first. Asked for `pending`, it also gives the requests recorded as not needing a second
    person, which may need one now (see effective_status): the caller judges them."""
    query = select(ChangeRequest).order_by(ChangeRequest.id.desc()).limit(LISTED)
    if status == PENDING:
        query = query.where(ChangeRequest.status.in_([PENDING, NOT_REQUIRED]))
    elif status:
        query = query.where(ChangeRequest.status == status)
    if resource_type:
        query = query.where(ChangeRequest.resource_type == resource_type)
    if resource_key:
        query = query.where(ChangeRequest.resource_key == resource_key)
    return list(session.scalars(query).all())


def change_requests(
    session: Session,
    *,
    status: str | None = None,
    resource_type: str | None = None,
    resource_key: str | None = None,
    now: ResourcesNow | None = None,
) -> list[ChangeRequestOut]:
    judged = _judged(_listed(session, status, resource_type, resource_key), now)
    return [out for _, _, out in judged if status is None or out.status == status]


def change_requests_for(
    session: Session, actor: Actor, *, status: str | None = None, now: ResourcesNow | None = None
) -> tuple[list[ChangeRequestOut], set[int]]:
    """For pages: the requests, and which of them this actor may approve or reject (the buttons shown)."""
    judged = [
        item
        for item in _judged(_listed(session, status, None, None), now)
        if status is None or item[2].status == status
    ]
    deciders = {
        out.id
        for _, resource, out in judged
        if out.status == PENDING and policy.can(actor, "approval.decide", resource)
    }
    return [out for _, _, out in judged], deciders


def waiting_for(session: Session, actor: Actor, *, now: ResourcesNow | None = None) -> list[ChangeRequestOut]:
    """The requests waiting for a second person that this actor may decide (not ones they asked for),
    the longest waiting first: what a person's home shows them to do. Among the newest LISTED."""
    requests, deciders = change_requests_for(session, actor, status=PENDING, now=now)
    return sorted((r for r in requests if r.id in deciders), key=lambda r: (r.requested_at, r.id))


def decide_change(
    session: Session,
    actor: Actor,
    request_id: int,
    *,
    approve: bool,
    reason: str | None,
    at: datetime,
    now: ResourcesNow | None = None,
) -> ChangeRequestOut:
    """Approve or reject a request that needs a second person, judged against its resource as it is
    now (its owning team and tier today). The one who asked may not decide it. The decision is one
    guarded UPDATE: of two racing deciders exactly one wins, the other is told it is decided already."""
    [(row, resource, judged)] = _judged([_row(session, request_id)], now)
    policy.require(actor, "approval.decide", resource)
    if judged.status != PENDING:
        raise _decided_already(row, judged.status)
    changed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ChangeRequest)
        .where(ChangeRequest.id == row.id, ChangeRequest.status == row.status)
        .values(
            status=APPROVED if approve else REJECTED,
            decided_by=actor.label,
            decided_at=at,
            reason=reason,
            team_slug=resource.team,
            tier=resource.tier,
            production=resource.production,
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
        before={"status": judged.status},
        after={"status": row.status},
        note=reason,
    )
    return _out(row)


def _decided_already(row: ChangeRequest, status: str) -> InvalidTransition:
    return InvalidTransition(
        f"approval request {row.id} is {status.replace('_', ' ')}: nothing to decide",
        code="approval.not_pending",
        details={"status": status},
    )
