"""A rollout's approvals go through access's change requests: an approval step asks one (with a second
person when the step says `two_person`), the decision is taken on /approvals, the API or the rollout's
own approve/reject controls, and deciding wakes the step at once. An emergency deploy into a frozen
environment needs an approved `deploy.emergency` request too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, ChangeRequestIn, ChangeRequestOut, Resource, TeamRoleName
from quarterdeck.catalog import service as catalog
from quarterdeck.deploys.change_requests import resources_now
from quarterdeck.deploys.models import Environment
from quarterdeck.deploys.pipelines.format import ApprovalSpec, TeamApprover
from quarterdeck.deploys.reading import find_environment
from quarterdeck.deploys.rollouts import lifecycle, store
from quarterdeck.deploys.rollouts.models import Rollout, RolloutStep
from quarterdeck.deploys.rollouts.states import RolloutState, StepState
from quarterdeck.errors import Forbidden, NotFound

EMERGENCY = "deploy.emergency"
"""The action of a request to deploy into a frozen environment."""
STEP_ACTION = "deploy"


@dataclass(frozen=True)
class Request:
    """An approval step's change request as the step job needs it."""

    id: int
    status: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class Asked:
    id: int
    who: str
    waiting: str
    """`waiting for an owner of team shop to approve (request 12)`."""


def _who(spec: ApprovalSpec, owner: str | None) -> tuple[str, str | None]:
    """Who may approve, in words, and their team."""
    if isinstance(spec.who, TeamApprover):
        return f"a member of team {spec.who.team}", spec.who.team
    role = "an owner" if spec.who.team_role == "owner" else "a member"
    return f"{role} of team {owner or '(none: the service has no owning team)'}", owner


def request_of(session: Session, step: RolloutStep) -> Request | None:
    request_id = step.detail.get("request") if step.kind == "approval" else None
    if not isinstance(request_id, int):
        return None
    try:
        found = access.change_request(session, request_id, now=resources_now(session))
    except NotFound:
        return None
    return Request(found.id, found.status, found.decided_by, found.decided_at, found.reason)


def ask(session: Session, rollout: Rollout, step: RolloutStep, spec: ApprovalSpec, *, at: datetime) -> Asked:
    """Ask for the step's approval. With `two_person` it is asked in the deployer's name, so they
    cannot give it themselves; otherwise in the orchestrator's, so they may."""
    ref = catalog.service_ref(session, rollout.service_slug)
    env = session.get_one(Environment, rollout.environment_id)
    who, team = _who(spec, ref.owner)
    if isinstance(spec.who, TeamApprover):
        resource = Resource(
            type="rollout",
            key=f"{ref.slug}@{env.slug}",
            team=team,
            tier=ref.tier,
            environment=env.slug,
            production=env.production,
        )
    else:
        resource = ref.resource(environment=env.slug, production=env.production)
    asker = lifecycle.on_behalf_of(rollout) if spec.two_person else lifecycle.SYSTEM
    second = ", not the deployer" if spec.two_person else ""
    request = access.ask_change(
        session,
        asker,
        ChangeRequestIn(
            action=STEP_ACTION,
            resource=resource,
            summary=f"Rollout {rollout.id}, step {step.position + 1}: ship {ref.slug} "
            f"{rollout.release_version} to {env.slug} ({who} approves{second})",
            details={"version": rollout.release_version, "rollout": rollout.id, "step": step.position},
            needs_decision=True,
        ),
        at=at,
    )
    return Asked(request.id, who, f"waiting for {who}{second} to approve (request {request.id})")


def wake(session: Session, request: ChangeRequestOut, *, at: datetime) -> None:
    """After a decision: schedule the step of the rollout that waits on this request, if one does."""
    rollout_id = request.details.get("rollout")
    if not isinstance(rollout_id, int):
        return
    try:
        rollout = store.get(session, rollout_id, fresh=True)
    except NotFound:
        return
    if RolloutState(rollout.state) is not RolloutState.WAITING_APPROVAL:
        return
    step = store.step_of(session, rollout.id, rollout.current_step)
    if step.detail.get("request") == request.id and StepState(step.state) is StepState.WAITING:
        lifecycle.schedule(session, rollout, at=at, why=f"decided-{request.id}")


def decide_change(
    session: Session, actor: Actor, request_id: int, *, approve: bool, reason: str | None, at: datetime
) -> ChangeRequestOut:
    """Approve or reject any change request (access's rules), then wake the rollout step waiting on it:
    what /approvals, the approvals API and the rollout controls call."""
    decided = access.decide_change(
        session, actor, request_id, approve=approve, reason=reason, at=at, now=resources_now(session)
    )
    wake(session, decided, at=at)
    return decided


def require_approver(session: Session, actor: Actor, rollout: Rollout, spec: ApprovalSpec) -> None:
    """An approval step for `{team_role: owner}` takes an owner of the service's team (or an admin):
    the change request's own rule lets any member decide."""
    if isinstance(spec.who, TeamApprover) or spec.who.team_role != "owner" or actor.all_teams:
        return
    owner = catalog.service_ref(session, rollout.service_slug).owner
    if owner is None or actor.teams.get(owner) is not TeamRoleName.OWNER:
        raise Forbidden(
            f"step {rollout.current_step + 1} of rollout {rollout.id} needs an owner of team {owner} "
            "to approve it",
            code="access.forbidden",
            details={"action": "approval.decide"},
        )


def ask_emergency(
    session: Session, actor: Actor, service: str, environment: str, version: str, reason: str, *, at: datetime
) -> ChangeRequestOut:
    """Ask to deploy into a frozen environment anyway. A second person approves it on /approvals;
    then `start_rollout(..., emergency=True)` goes ahead, audited."""
    ref = catalog.service_ref(session, service)
    env = find_environment(session, environment)
    return access.ask_change(
        session,
        actor,
        ChangeRequestIn(
            action=EMERGENCY,
            resource=ref.resource(environment=env.slug, production=env.production),
            summary=f"Emergency deploy of {ref.slug} {version} to frozen {env.slug}: {reason}",
            details={"version": version},
            needs_decision=True,
        ),
        at=at,
    )


def approved_emergency(
    session: Session, service: str, environment: str, version: str
) -> ChangeRequestOut | None:
    """The newest approved emergency request for this very deploy, if there is one."""
    approved = access.change_requests(
        session, status="approved", resource_type="service", resource_key=service
    )
    return next(
        (
            request
            for request in approved
            if request.action == EMERGENCY
            and request.environment == environment
            and request.version == version
        ),
        None,
    )
