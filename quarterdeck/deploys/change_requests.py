"""What change requests mean here: asking to ship a version, and judging any request about a service in an
environment (a deploy, a production flag change, a pipeline override) against that service and that
environment as they are now. Asking, listing and deciding themselves are access's (change_requests.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, ChangeRequestIn, ChangeRequestOut, Resource
from quarterdeck.catalog import service as catalog
from quarterdeck.deploys import queries
from quarterdeck.deploys.reading import find_environment

DEPLOY = "deploy"
"""The action of a request to ship a version."""


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
