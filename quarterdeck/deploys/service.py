"""Deploy use cases: environments, deploy reports and approvals of production changes; the reads are in
reading.py. The only place deploy rules live; callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, ApprovalOut, Resource
from quarterdeck.catalog import service as catalog
from quarterdeck.db import lock_row
from quarterdeck.deploys import queries
from quarterdeck.deploys.ingest import NewDeploy, NewRelease, ReleaseKey, insert_new
from quarterdeck.deploys.models import Deploy, DeployStatus, Environment, LiveVersion, Release
from quarterdeck.deploys.queries import DeployFilters
from quarterdeck.deploys.reading import (
    changes_of,
    deploy_out,
    deploy_view,
    env_out,
    environments,
    find_environment,
    list_deploys,
    live_of,
    matrix,
)
from quarterdeck.deploys.schemas import (
    DeployReport,
    EnvironmentIn,
    EnvironmentOut,
    ReportResult,
)
from quarterdeck.errors import Conflict, Invalid, InvalidTransition, NotFound, QuarterdeckError
from quarterdeck.integrations.oci_registry import parse_image_ref

__all__ = [
    "DeployFilters",
    "apply_environments",
    "approval",
    "approvals",
    "approvals_for",
    "changes_of",
    "decide_approval",
    "deploy_view",
    "env_out",
    "environments",
    "list_deploys",
    "live_of",
    "matrix",
    "put_environment",
    "report",
    "request_approval",
]

NEXT_STATUSES: dict[DeployStatus, frozenset[DeployStatus]] = {
    DeployStatus.RUNNING: frozenset({DeployStatus.SUCCEEDED, DeployStatus.FAILED, DeployStatus.ROLLED_BACK}),
    DeployStatus.SUCCEEDED: frozenset({DeployStatus.ROLLED_BACK}),
    DeployStatus.FAILED: frozenset(),
    DeployStatus.ROLLED_BACK: frozenset(),
}
"""A report may move a deploy on, never back: a finished deploy does not start running again."""
CLOCK_SKEW = timedelta(minutes=5)


# ---------------------------------------------------------------- environments


def put_environment(
    session: Session, actor: Actor, slug: str, body: EnvironmentIn, *, at: datetime
) -> Environment:
    """Create or change an environment (admins). Its slug is what reports name."""
    access.require(actor, "settings.edit", Resource(type="environment", key=slug))
    env = session.scalar(select(Environment).where(Environment.slug == slug))
    before = env_out(env).model_dump() if env else None
    if env is None:
        env = Environment(slug=slug, created_at=at)
        session.add(env)
    env.name, env.position, env.production = body.name, body.position, body.production
    session.flush()
    after = env_out(env).model_dump()
    if before != after:
        access.record(
            session, actor, "environment.put", target=("environment", slug), at=at, before=before, after=after
        )
    return env


def apply_environments(
    session: Session, actor: Actor, declared: Sequence[tuple[str, EnvironmentIn]], *, at: datetime
) -> list[EnvironmentOut]:
    """Make the environments match a declared list (in its order). None is removed: deploys refer to them."""
    for slug, body in declared:
        put_environment(session, actor, slug, body, at=at)
    return environments(session)


# ---------------------------------------------------------------- reports


def _check_times(report: DeployReport, at: datetime) -> None:
    problems = []
    if report.started_at > at + CLOCK_SKEW:
        problems.append({"field": "started_at", "message": "is in the future"})
    if report.finished_at is not None and report.finished_at < report.started_at:
        problems.append({"field": "finished_at", "message": "is before started_at"})
    if report.status is DeployStatus.RUNNING and report.finished_at is not None:
        problems.append({"field": "finished_at", "message": "a running deploy has not finished"})
    if problems:
        first = problems[0]
        raise Invalid(
            f"deploy {report.id!r}: {first['field']} {first['message']}",
            code="deploys.bad_times",
            details=problems,
        )


def _image_parts(report: DeployReport) -> tuple[str | None, str | None]:
    """The image reference as given, and its digest when the reference pins one."""
    if report.image is None:
        return None, None
    try:
        ref = parse_image_ref(report.image)
    except Invalid as exc:
        raise Invalid(
            f"deploy {report.id!r}: image {exc.message}",
            code="deploys.bad_image",
            details=[{"field": "image", "message": exc.message}],
        ) from exc
    return report.image, ref.digest


def _refresh_live(session: Session, service: str, environment_id: int) -> None:
    newest = queries.newest_succeeded(session, service, environment_id)
    live = session.get(LiveVersion, (service, environment_id))
    if newest is None:
        if live is not None:
            session.delete(live)
    elif live is None:
        session.add(LiveVersion(service_slug=service, environment_id=environment_id, deploy_id=newest.id))
    else:
        live.deploy_id = newest.id
    session.flush()


def _update(
    session: Session, actor: Actor, deploy: Deploy, env: Environment, report: DeployReport, at: datetime
) -> ReportResult:
    """A report of a known deploy: a retry when the status is the same (the first report's times
    stand), else a move forward, which takes the new finish time."""
    lock_row(session, deploy)
    release = session.get_one(Release, deploy.release_id)
    if (deploy.service_slug, deploy.environment_id, release.version) != (
        report.service,
        env.id,
        report.version,
    ):
        raise Conflict(
            f"deploy id {report.id!r} already reports {deploy.service_slug} {release.version} "
            f"to another environment or version; a new deploy needs a new id",
            code="deploys.id_reused",
            details={"id": report.id},
        )
    current, wanted = DeployStatus(deploy.status), report.status
    if current is wanted:
        return ReportResult(deploy=deploy_out(deploy, env, release), outcome="unchanged")
    if wanted not in NEXT_STATUSES[current]:
        raise InvalidTransition(
            f"deploy {report.id!r} is {current.value}; it cannot become {wanted.value}",
            code="deploys.bad_transition",
            details={"from": current.value, "to": wanted.value},
        )
    before = {"status": deploy.status, "finished_at": deploy.finished_at}
    deploy.status, deploy.finished_at = wanted.value, report.finished_at
    if report.notes:
        deploy.notes = report.notes
    session.flush()
    _refresh_live(session, deploy.service_slug, env.id)
    access.record(
        session,
        actor,
        "deploy.update",
        target=("deploy", str(deploy.id)),
        at=at,
        before=before,
        after={"status": deploy.status, "finished_at": deploy.finished_at},
    )
    return ReportResult(deploy=deploy_out(deploy, env, release), outcome="updated")


def _check_release(
    releases: dict[ReleaseKey, Release], pending: dict[ReleaseKey, NewRelease], report: DeployReport
) -> None:
    """A version is released once: later reports may add its image or commit, never change them."""
    image, digest = _image_parts(report)
    key = (report.service, report.version)
    known: Release | NewRelease | None = releases.get(key) or pending.get(key)
    if known is None:
        pending[key] = NewRelease(report.service, report.version, image, digest, report.commit, report.notes)
        return
    for field, given in (("image", image), ("commit", report.commit)):
        current = getattr(known, field)
        if given is not None and current is not None and given != current:
            raise Conflict(
                f"version {report.version} of {report.service} was released with {field} {current}; "
                f"this report says {given}",
                code="deploys.release_mismatch",
                details=[{"field": field, "message": f"expected {current}"}],
            )
        if current is None and given is not None:
            setattr(known, field, given)
    if known.digest is None and digest is not None:
        known.digest = digest


def _resource(services: dict[str, Resource], env: Environment, report: DeployReport) -> Resource:
    base = services.get(report.service)
    if base is None:
        raise NotFound(
            f"service {report.service!r} is not in the catalog",
            code="catalog.service_not_found",
            details=[{"field": "service", "message": "not in the catalog"}],
        )
    return Resource(
        type="service",
        key=base.key,
        team=base.team,
        tier=base.tier,
        environment=env.slug,
        production=env.production,
    )


@contextmanager
def _located(index: int, report: DeployReport, batch: int) -> Iterator[None]:
    """In a batch, an error says which report it is about."""
    try:
        yield
    except QuarterdeckError as exc:
        if batch > 1:
            exc.message = f"report {index} ({report.id}): {exc.message}"
            exc.details = {"index": index, "id": report.id, "problems": exc.details}
        raise


def report(
    session: Session, actor: Actor, reports: Sequence[DeployReport], *, at: datetime
) -> list[ReportResult]:
    """Record deploys done elsewhere, all or nothing: one bad report refuses the batch, and the error
    says which one (`details.index`). Every report is checked first; new deploys are then written
    together (ingest.py), known ids move on one by one."""
    environments_by_slug = {env.slug: env for env in queries.environments(session)}
    services = catalog.service_resources(session, {r.service for r in reports})
    existing = queries.deploys_by_external_id(session, [r.id for r in reports])
    releases = queries.releases_for(session, {(r.service, r.version) for r in reports})
    pending: dict[ReleaseKey, NewRelease] = {}
    results: dict[int, ReportResult] = {}
    fresh: list[tuple[int, NewDeploy]] = []
    first_of: dict[str, tuple[int, DeployReport]] = {}
    for index, one in enumerate(reports):
        with _located(index, one, len(reports)):
            env = find_environment(session, one.environment, environments_by_slug)
            access.require(actor, "deploy", _resource(services, env, one))
            _check_times(one, at)
            if one.id in existing:
                results[index] = _update(session, actor, existing[one.id], env, one, at)
            elif one.id in first_of:
                if first_of[one.id][1] != one:
                    raise Conflict(
                        f"deploy id {one.id!r} appears twice in the batch with different contents",
                        code="deploys.id_reused",
                        details={"id": one.id},
                    )
            else:
                _check_release(releases, pending, one)
                first_of[one.id] = (index, one)
                fresh.append((index, NewDeploy(one, env)))
    if fresh:
        outs = insert_new(session, actor, [item for _i, item in fresh], releases, pending, at=at)
        results.update(
            {
                index: ReportResult(deploy=out, outcome="created")
                for (index, _item), out in zip(fresh, outs, strict=True)
            }
        )
    for index, one in enumerate(reports):
        if index not in results:
            results[index] = ReportResult(deploy=results[first_of[one.id][0]].deploy, outcome="unchanged")
    return [results[index] for index in range(len(reports))]


# ---------------------------------------------------------------- approvals


def _approval_resource(session: Session, service: str, environment: str) -> Resource:
    row = catalog.find_row(session, "service", service)
    env = find_environment(session, environment)
    base = catalog.resource_of(row)
    return Resource(
        type="service",
        key=base.key,
        team=base.team,
        tier=base.tier,
        environment=env.slug,
        production=env.production,
    )


def _current_resources(session: Session, rows: Sequence[Any]) -> dict[int, Resource]:
    """Each approval request's service as it is now (owning team, tier) in its environment; requests
    whose service or environment is gone are left out, and judged by their own record."""
    services = catalog.service_resources(session, {row.service_slug for row in rows})
    envs = {env.slug: env for env in queries.environments(session)}
    current: dict[int, Resource] = {}
    for row in rows:
        base, env = services.get(row.service_slug), envs.get(row.environment)
        if base is not None and env is not None:
            current[row.id] = replace(base, environment=env.slug, production=env.production)
    return current


def request_approval(
    session: Session,
    actor: Actor,
    *,
    service: str,
    environment: str,
    version: str | None,
    summary: str,
    at: datetime,
) -> ApprovalOut:
    """Ask before shipping. Tier-1 production changes wait for a second person; others need none
    (for now: the answer is judged again against the service each time it is read or decided)."""
    resource = _approval_resource(session, service, environment)
    row = access.request_approval(session, actor, resource, version=version, summary=summary, at=at)
    return access.approval_out(row, resource)


def decide_approval(
    session: Session, actor: Actor, approval_id: int, *, approve: bool, reason: str | None, at: datetime
) -> ApprovalOut:
    """Approve or reject, judged against the service's owning team and tier as they are now."""
    row = access.get_approval(session, approval_id)
    current = _current_resources(session, [row]).get(row.id)
    decided = access.decide(
        session, actor, approval_id, approve=approve, reason=reason, at=at, current=current
    )
    return access.approval_out(decided, current)


def approval(session: Session, approval_id: int) -> ApprovalOut:
    row = access.get_approval(session, approval_id)
    return access.approval_out(row, _current_resources(session, [row]).get(row.id))


def _judged(
    session: Session, status: str | None, service: str | None = None
) -> list[tuple[Any, Resource | None, ApprovalOut]]:
    rows = access.list_approvals(session, status=status, service=service)
    current = _current_resources(session, rows)
    judged = [(row, current.get(row.id), access.approval_out(row, current.get(row.id))) for row in rows]
    return [item for item in judged if status is None or item[2].status == status]


def approvals(
    session: Session, *, status: str | None = None, service: str | None = None
) -> list[ApprovalOut]:
    return [out for _row, _current, out in _judged(session, status, service)]


def approvals_for(
    session: Session, actor: Actor, *, status: str | None = None
) -> tuple[list[ApprovalOut], set[int]]:
    """For pages: the requests, and which of them this actor may approve or reject (the buttons shown)."""
    judged = _judged(session, status)
    deciders = {
        out.id
        for row, current, out in judged
        if out.status == "pending"
        and access.can(
            actor,
            "approval.decide",
            replace(current or access.resource_of(row), owner_user_id=row.requested_by_user_id),
        )
    }
    return [out for _row, _current, out in judged], deciders
