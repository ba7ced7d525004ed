"""What change requests mean here: asking to ship a version, judging any request about a service in an
environment (a deploy, a production flag change, a pipeline override) against that service and that
environment as they are now, and which approved request a reported deploy shipped under. Asking,
listing and deciding themselves are access's (change_requests.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, ChangeRequestIn, ChangeRequestOut, Resource
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceRef
from quarterdeck.deploys import queries
from quarterdeck.deploys.flagging import needs_approval
from quarterdeck.deploys.models import Environment
from quarterdeck.deploys.reading import find_environment
from quarterdeck.deploys.schemas import DeployReport
from quarterdeck.errors import Invalid, NotFound

DEPLOY = "deploy"
"""The action of a request to ship a version."""
VOUCHING = frozenset({"approved", "not_required"})
"""A request in these statuses (judged now) lets its deploy go: approved, or needing nobody."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far a reporter's clock may run behind the portal's when an approval and a deploy start together."""


def ask_to_deploy(
    session: Session,
    actor: Actor,
    *,
    service: str,
    environment: str,
    version: str | None,
    summary: str,
    at: datetime,
) -> ChangeRequestOut:
    """Ask before shipping `version` of a service to an environment. Tier-1 production changes wait for
    a second person; others need none, for now: every read and decision judges again (resources_now)."""
    ref = catalog.service_ref(session, service)
    env = find_environment(session, environment)
    request = ChangeRequestIn(
        action=DEPLOY,
        resource=ref.resource(environment=env.slug, production=env.production),
        summary=summary,
        details={"version": version} if version else {},
    )
    return access.ask_change(session, actor, request, at=at)


def resources_now(session: Session) -> access.ResourcesNow:
    """The judge of requests about services, for access's change request functions: each one's service
    as it is now (owning team, tier) in its environment as it is now (production or not). Requests about
    anything else, or whose service or environment is gone, are left out: their own record stands."""

    def now(requests: Sequence[ChangeRequestOut]) -> Mapping[int, Resource]:
        about = [request for request in requests if request.resource_type == "service"]
        refs = catalog.service_refs(session, {request.resource_key for request in about})
        envs = {env.slug: env for env in queries.environments(session)}
        current: dict[int, Resource] = {}
        for request in about:
            ref = refs.get(request.resource_key)
            if ref is None:
                continue
            if not request.environment:
                current[request.id] = ref.resource(production=request.production)
            elif (env := envs.get(request.environment)) is not None:
                current[request.id] = ref.resource(environment=env.slug, production=env.production)
        return current

    return now


ApprovedByService = dict[str, list[ChangeRequestOut]]
"""Approved requests about each service, newest first: read once per service and batch."""


def _refusal(report: DeployReport, approval_id: int, problem: str) -> Invalid:
    return Invalid(
        f"deploy {report.id!r}: approval {approval_id} {problem}",
        code="deploys.bad_approval",
        details=[{"field": "approval", "message": problem}],
    )


def named_approval(session: Session, report: DeployReport, env: Environment, approval_id: int) -> int:
    """The request the report names, checked: about deploying this service to this environment (and
    this version, when it names one), approved (or needing nobody) before the deploy started."""
    try:
        request = access.change_request(session, approval_id, now=resources_now(session))
    except NotFound as exc:
        raise _refusal(report, approval_id, "does not exist (ask with POST /api/v1/approvals)") from exc
    if (request.action, request.resource_type, request.resource_key, request.environment) != (
        DEPLOY,
        "service",
        report.service,
        env.slug,
    ):
        about = f"{request.action} of {request.resource_type} {request.resource_key}"
        where = f" to {request.environment}" if request.environment else ""
        raise _refusal(
            report, approval_id, f"is about {about}{where}, not a deploy of {report.service} to {env.slug}"
        )
    if request.version is not None and request.version != report.version:
        raise _refusal(report, approval_id, f"is for version {request.version}, not {report.version}")
    if request.status not in VOUCHING:
        status = request.status.replace("_", " ")
        raise _refusal(
            report,
            approval_id,
            f"is {status}, not approved: wait for a second person, or report without `approval` "
            "(the deploy is then flagged as unapproved)",
        )
    if request.decided_at is not None and request.decided_at > report.started_at + CLOCK_SKEW:
        raise _refusal(
            report,
            approval_id,
            f"was approved at {request.decided_at.isoformat()}, after the deploy started "
            f"({report.started_at.isoformat()})",
        )
    return request.id


def linked_approval(
    session: Session,
    report: DeployReport,
    env: Environment,
    ref: ServiceRef,
    known: ApprovedByService,
) -> int | None:
    """The change request a newly reported deploy shipped under: the one the report names (checked;
    Invalid when it cannot vouch for this deploy), else, for a deploy that needs one, the newest request
    approved before it started to deploy this very version of the service to this environment."""
    if report.approval is not None:
        return named_approval(session, report, env, report.approval)
    if not needs_approval(ref.tier, env):
        return None
    if ref.slug not in known:
        # An approved request stays approved whatever the service is now: no judging needed.
        known[ref.slug] = access.change_requests(
            session, status="approved", resource_type="service", resource_key=ref.slug
        )
    return next(
        (
            request.id
            for request in known[ref.slug]
            if request.action == DEPLOY
            and request.environment == env.slug
            and request.version == report.version
            and request.decided_at is not None
            and request.decided_at <= report.started_at + CLOCK_SKEW
        ),
        None,
    )
