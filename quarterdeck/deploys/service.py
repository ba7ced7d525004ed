"""Deploy use cases: environments, deploy reports and moves, and what a change request means for deploys
(change_requests.py); the reads are in reading.py. The only place deploy rules live; callers own the
transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, Resource
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceRef
from quarterdeck.deploys import live, queries, transitions
from quarterdeck.deploys.change_requests import (
    ApprovedByService,
    ask_to_deploy,
    linked_approval,
    named_approval,
    resources_now,
)
from quarterdeck.deploys.ingest import NewDeploy, NewRelease, ReleaseKey, insert_new
from quarterdeck.deploys.models import Deploy, Environment, Release
from quarterdeck.deploys.queries import DeployFilters
from quarterdeck.deploys.reading import (
    changes_of,
    deploy_out,
    deploy_view,
    env_out,
    environments,
    find_environment,
    latest_by_environment,
    list_deploys,
    live_by_environment,
    live_of,
    matrix,
    recent_deploys_of,
    repository_url,
    repository_urls,
)
from quarterdeck.deploys.schemas import (
    DeployOut,
    DeployReport,
    EnvironmentIn,
    EnvironmentOut,
    ReportResult,
)
from quarterdeck.deploys.states import FINISHED, DeployStatus
from quarterdeck.errors import Conflict, Invalid, InvalidTransition, NotFound, QuarterdeckError
from quarterdeck.integrations.oci_registry import parse_image_ref

__all__ = [
    "MAX_BATCH",
    "DeployFilters",
    "apply_environments",
    "ask_to_deploy",
    "changes_of",
    "deploy_view",
    "env_out",
    "environments",
    "environments_to_edit",
    "latest_by_environment",
    "list_deploys",
    "live_by_environment",
    "live_of",
    "matrix",
    "move_deploy",
    "put_environment",
    "recent_deploys_of",
    "report",
    "repository_url",
    "repository_urls",
    "resources_now",
]

MAX_BATCH = 1000
"""Reports in one batch, at most: a batch is one transaction."""
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


def environments_to_edit(session: Session, actor: Actor) -> list[EnvironmentOut]:
    """The environments, for the admin page that changes them (admins only)."""
    access.require(actor, "settings.edit")
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


def _move(
    session: Session,
    actor: Actor,
    deploy: Deploy,
    *,
    to: DeployStatus,
    finished_at: datetime | None,
    reason: str,
    at: datetime,
    notes: str | None = None,
) -> Deploy:
    """Move a deploy on from the status it was read in (transitions.move: guarded, with its event), then
    keep its environment's live version true and audit the change."""
    before = {"status": deploy.status, "finished_at": deploy.finished_at}
    moved = transitions.move(
        session,
        deploy.id,
        from_=DeployStatus(deploy.status),
        to=to,
        finished_at=finished_at,
        at=at,
        actor=actor.label,
        reason=reason,
        notes=notes,
    )
    live.refresh(session, [(moved.service_slug, moved.environment_id)])
    access.record(
        session,
        actor,
        "deploy.update",
        target=("deploy", str(moved.id)),
        at=at,
        before=before,
        after={"status": moved.status, "finished_at": moved.finished_at},
    )
    return moved


def _update(
    session: Session, actor: Actor, deploy: Deploy, env: Environment, report: DeployReport, at: datetime
) -> ReportResult:
    """A report of a known deploy: a retry when the status is the same (the first report's times
    stand), else a move forward, which takes the new finish time. A report that lost the race to
    another moving the deploy to the same status is a retry too."""
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
    linked = report.approval is not None and _link_approval(
        session, actor, deploy, env, report, report.approval, at
    )
    if DeployStatus(deploy.status) is report.status:
        return ReportResult(
            deploy=deploy_out(deploy, env, release), outcome="updated" if linked else "unchanged"
        )
    try:
        moved = _move(
            session,
            actor,
            deploy,
            to=report.status,
            finished_at=report.finished_at,
            reason=f"reported by {report.source.value}",
            at=at,
            notes=report.notes,
        )
    except InvalidTransition as exc:
        if exc.details.get("from") != report.status.value:
            raise
        moved = session.get_one(Deploy, deploy.id, populate_existing=True)
        return ReportResult(deploy=deploy_out(moved, env, release), outcome="unchanged")
    return ReportResult(deploy=deploy_out(moved, env, release), outcome="updated")


def _link_approval(
    session: Session,
    actor: Actor,
    deploy: Deploy,
    env: Environment,
    report: DeployReport,
    named: int,
    at: datetime,
) -> bool:
    """A later report of a deploy may name the approval it shipped under when none is linked yet (the
    first report went out before CI had the id); another approval than the one linked is refused.
    Whether anything changed."""
    if deploy.approval_id == named:
        return False
    if deploy.approval_id is None:
        approval = named_approval(session, report, env, named)
        if queries.link_approval(session, deploy.id, approval):
            session.refresh(deploy)
            access.record(
                session,
                actor,
                "deploy.update",
                target=("deploy", str(deploy.id)),
                at=at,
                before={"approval": None},
                after={"approval": approval},
            )
            return True
        session.refresh(deploy)
        if deploy.approval_id == named:
            return False
    raise Conflict(
        f"deploy id {report.id!r} shipped under approval {deploy.approval_id}, not {named}",
        code="deploys.approval_mismatch",
        details=[{"field": "approval", "message": f"expected {deploy.approval_id}"}],
    )


def move_deploy(
    session: Session,
    actor: Actor,
    deploy_id: int,
    *,
    expected: DeployStatus,
    to: DeployStatus,
    reason: str,
    at: datetime,
) -> DeployOut:
    """Move a deploy on (a pipeline step's outcome, an operator's rollback) from the status the caller
    saw it in (`expected`). Of racing moves exactly one wins; the others are refused (InvalidTransition,
    naming the status the deploy has now), so no step acts on a deploy that moved under it."""
    found = queries.by_id(session, deploy_id)
    if found is None:
        raise NotFound(f"no deploy {deploy_id}", code="deploys.unknown_deploy")
    deploy, env, release = found
    ref = catalog.service_ref(session, deploy.service_slug)
    access.require(actor, "deploy", ref.resource(environment=env.slug, production=env.production))
    if DeployStatus(deploy.status) is not expected:
        raise transitions.refusal(session, deploy.id, expected, to)
    moved = _move(
        session, actor, deploy, to=to, finished_at=at if to in FINISHED else None, reason=reason, at=at
    )
    return deploy_out(moved, env, release)


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


def _resource(
    session: Session, services: dict[str, ServiceRef], env: Environment, report: DeployReport
) -> Resource:
    ref = services.get(report.service)
    if ref is None:
        near = catalog.closest_names(session, report.service, entity_type="service")
        raise NotFound(
            f"service {report.service!r} is not in the catalog{catalog.did_you_mean(near)}",
            code="catalog.service_not_found",
            details=[{"field": "service", "message": "not in the catalog", "suggestions": near}],
        )
    return ref.resource(environment=env.slug, production=env.production)


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
    together (ingest.py), known ids move on one by one. At most MAX_BATCH reports a batch.

    A new deploy keeps the service's tier as it is now and the approval it shipped under (named, or
    found: change_requests.linked_approval), which is what its flags are judged by (flagging.py)."""
    if len(reports) > MAX_BATCH:
        raise Invalid(
            f"a batch holds at most {MAX_BATCH} reports, not {len(reports)}", code="deploys.batch_too_big"
        )
    environments_by_slug = {env.slug: env for env in queries.environments(session)}
    services = catalog.service_refs(session, {r.service for r in reports})
    existing = queries.deploys_by_external_id(session, [r.id for r in reports])
    releases = queries.releases_for(session, {(r.service, r.version) for r in reports})
    pending: dict[ReleaseKey, NewRelease] = {}
    results: dict[int, ReportResult] = {}
    fresh: list[tuple[int, NewDeploy]] = []
    first_of: dict[str, tuple[int, DeployReport]] = {}
    approved: ApprovedByService = {}
    for index, one in enumerate(reports):
        with _located(index, one, len(reports)):
            env = find_environment(session, one.environment, environments_by_slug)
            access.require(actor, "deploy", _resource(session, services, env, one))
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
                ref = services[one.service]
                approval = linked_approval(session, one, env, ref, approved)
                first_of[one.id] = (index, one)
                fresh.append((index, NewDeploy(one, env, tier=ref.tier, approval_id=approval)))
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
