"""Pipeline use cases: which pipeline a deploy gets and why, applying an override (rights, versions,
audit), the stored pipelines and their versions, and the exact version a deploy ran. The only place
pipeline rules live; callers own the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime
from functools import cache

from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, Resource
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceFilters, ServiceRef
from quarterdeck.deploys import queries
from quarterdeck.deploys.flagging import approval_tiers
from quarterdeck.deploys.models import Environment
from quarterdeck.deploys.pipeline_models import PipelineRow
from quarterdeck.deploys.pipelines import store
from quarterdeck.deploys.pipelines.choice import Candidate, Target, choose, context_words, pipeline_key
from quarterdeck.deploys.pipelines.expressions import quoted
from quarterdeck.deploys.pipelines.format import (
    NAME_PATTERN,
    ApprovalStep,
    NotifyStep,
    Pipeline,
    TeamApprover,
)
from quarterdeck.deploys.pipelines.gates import has_second_person, lost_gates
from quarterdeck.deploys.pipelines.loading import Located, invalid, product_defaults
from quarterdeck.deploys.pipelines.schemas import (
    ApplyResult,
    ChosenPipeline,
    PipelineDetail,
    PipelineOut,
    PipelineVersionOut,
    PipelineVersionRef,
)
from quarterdeck.deploys.pipelines.summaries import step_views
from quarterdeck.deploys.reading import find_environment
from quarterdeck.errors import Conflict, Forbidden, Invalid, NotFound

EDITABLE_SCOPES = ("service", "team", "default")
PRODUCT_AUTHOR = "quarterdeck"
ANY_PRODUCTION = "any production environment"
"""Stands for the production environments to come, when an apply is judged before there is one."""


# ---------------------------------------------------------------- which pipeline, and why


@cache
def _shipped() -> tuple[Candidate, ...]:
    return tuple(
        Candidate("product", pipeline.name, None, pipeline, store.body_digest(pipeline.body()))
        for pipeline in product_defaults().pipelines
    )


def _product(stored: Sequence[Candidate]) -> list[Candidate]:
    """The product defaults, with the stored version of each one a deploy has run as it ships now."""
    run = {(c.ref, c.digest): c for c in stored if c.scope == "product"}
    return [run.get((shipped.ref, shipped.digest), shipped) for shipped in _shipped()]


def _source(candidate: Candidate) -> PipelineOut:
    return PipelineOut(
        id=candidate.pipeline_id,
        key=candidate.key,
        scope=candidate.scope,
        ref=candidate.ref,
        environment=candidate.environment,
        name=candidate.pipeline.name,
        version=candidate.version,
        digest=candidate.digest,
        updated_by=candidate.updated_by,
        updated_at=candidate.updated_at,
    )


def _target(ref: ServiceRef, env: Environment) -> Target:
    return Target(ref.slug, ref.owner, ref.tier, env.slug, env.production)


def _warnings(target: Target, pipeline: Pipeline) -> list[str]:
    resource = Resource(
        type="service", key=target.service, team=target.team, tier=target.tier, production=True
    )
    if target.production and access.needs_second_approval(resource) and not has_second_person(pipeline):
        return [
            f"{context_words(target)} needs a second person's approval and this pipeline asks for none "
            "before traffic moves: the deploy asks for one first (the two-person rule)"
        ]
    return []


def _chosen(target: Target, stored: Sequence[Candidate]) -> ChosenPipeline:
    choice = choose(target, stored, _product(stored))
    pipeline = choice.candidate.pipeline
    bake = product_defaults().bake_times
    return ChosenPipeline(
        service=target.service,
        environment=target.environment,
        production=target.production,
        tier=target.tier,
        team=target.team,
        source=_source(choice.candidate),
        reasons=list(choice.reasons),
        warnings=_warnings(target, pipeline),
        pipeline=pipeline,
        steps=step_views(pipeline, tier=target.tier, team=target.team, bake=bake),
        bake_seconds=bake.seconds(target.tier),
    )


def _stored_for(session: Session, ref: ServiceRef) -> list[Candidate]:
    return store.stored_candidates(session, services={ref.slug}, teams={ref.owner} if ref.owner else set())


def pipeline_for(session: Session, service_slug: str, environment_slug: str) -> ChosenPipeline:
    """The pipeline a deploy of the service to the environment gets now, with why (`reasons`) and its
    exact version (`source`): what the service's pipeline page shows and the orchestrator runs."""
    ref = catalog.service_ref(session, service_slug)
    env = find_environment(session, environment_slug)
    return _chosen(_target(ref, env), _stored_for(session, ref))


def pipelines_for_service(session: Session, service_slug: str) -> list[ChosenPipeline]:
    """The pipeline of each environment, in the portal's order of environments."""
    ref = catalog.service_ref(session, service_slug)
    stored = _stored_for(session, ref)
    return [_chosen(_target(ref, env), stored) for env in queries.environments(session)]


# ---------------------------------------------------------------- applying


def _resource(session: Session, scope: str, ref: str) -> tuple[str, Resource]:
    """The scope's key (the slug as the catalog spells it) and what the policy judges an edit of it by."""
    if scope == "service":
        service = catalog.service_ref(session, ref)
        return service.slug, service.resource()
    if scope == "team":
        team = catalog.team_view(session, ref)
        return team.slug, Resource(type="team", key=team.slug, team=team.slug)
    if scope == "default":
        if not re.fullmatch(NAME_PATTERN, ref):
            raise Invalid(
                f"an organisation default is named like a pipeline (lower-case letters, digits, '.', '_' "
                f"and '-', 100 characters at most), not {quoted(ref)}",
                code="pipelines.bad_name",
                details=[{"field": "ref", "message": "a pipeline name"}],
            )
        return ref, Resource(type="pipeline", key=ref)
    raise Invalid(
        f"pipelines are kept for a service, a team or as an organisation default, not {quoted(scope)}"
        + (
            "; the product defaults ship with Quarterdeck: override them with scope default"
            if scope == "product"
            else ""
        ),
        code="pipelines.bad_scope",
        details=[{"field": "scope", "message": "service, team or default"}],
    )


def _references(
    session: Session,
    pipeline: Pipeline,
    environment: Environment | None,
    *,
    source: str,
    header_sets: Collection[str],
) -> list[Located]:
    """What the pipeline names that must exist: environments, teams and header sets; and that its
    applies_to can hold in the environment it is applied for."""
    problems: list[Located] = []

    def problem(step: str | None, field: str, message: str) -> None:
        problems.append(Located(source, None, step, field, message))

    applies = pipeline.applies_to
    if environment is not None:
        where = applies.model_copy(update={"tiers": None})  # the tiers are the services' to match
        why = where.mismatch(
            service="its services", tier=None, environment=environment.slug, production=environment.production
        )
        if why is not None:
            problem(
                None,
                "applies_to",
                f"this override is for {environment.slug}, but {why}: it would never apply",
            )
    known = {env.slug for env in queries.environments(session)}
    for index, slug in enumerate(applies.environments or []):
        if slug not in known:
            listed = ", ".join(sorted(known)) or "none yet"
            problem(
                None, f"applies_to.environments[{index}]", f"no environment {quoted(slug)} (known: {listed})"
            )
    for index, step in enumerate(pipeline.steps):
        label = f"steps[{index}] ({step.kind})"
        if isinstance(step, ApprovalStep) and isinstance(step.approval.who, TeamApprover):
            team = step.approval.who.team
            try:
                catalog.team_view(session, team)
            except NotFound:
                near = catalog.closest_names(session, team, entity_type="team")
                problem(
                    label,
                    "who.team",
                    f"team {quoted(team)} is not in the catalog{catalog.did_you_mean(near)}",
                )
        if isinstance(step, NotifyStep):
            for position, name in enumerate(step.notify.headers):
                if name not in header_sets:
                    listed = ", ".join(sorted(header_sets)) or "none"
                    problem(
                        label,
                        f"headers[{position}]",
                        f"header set {quoted(name)} is not in the QD_WEBHOOK_HEADERS setting "
                        f"(it holds: {listed})",
                    )
    return problems


def _covered_services(session: Session, scope: str, key: str) -> list[ServiceRef]:
    """The services an override of `scope` `key` decides for, now, whose production deploys need a
    second person."""
    tiers = sorted(approval_tiers())
    if scope == "service":
        ref = catalog.service_ref(session, key)
        return [ref] if ref.tier in tiers else []
    slugs: list[str] = []
    for tier in tiers:
        cursor: str | None = None
        while True:
            page = catalog.list_services(
                session, ServiceFilters(owner=key, tier=tier, kind="component"), per_page=500, cursor=cursor
            )
            slugs += [summary.slug for summary in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    return list(catalog.service_refs(session, slugs).values())


def _weakened(
    session: Session, scope: str, key: str, environment: Environment | None, new: Candidate
) -> list[str]:
    """The approvals this apply would remove or loosen for deploys the two-person rule covers: each
    covered service of the scope, as the catalog says now, in each production environment."""
    if scope == "default":
        return []
    if environment is not None:
        envs = [environment.slug] if environment.production else []
    else:
        envs = [env.slug for env in queries.environments(session) if env.production] or [ANY_PRODUCTION]
    services = _covered_services(session, scope, key)
    if not envs or not services:
        return []
    stored = store.stored_candidates(
        session, services={s.slug for s in services}, teams={s.owner for s in services if s.owner}
    )
    after = [c for c in stored if c.key != new.key] + [new]
    lost: list[str] = []
    for service in services:
        for env in envs:
            target = Target(service.slug, service.owner, service.tier, env, True)
            before_choice = choose(target, stored, _product(stored))
            after_choice = choose(target, after, _product(stored))
            for gate in lost_gates(before_choice.candidate.pipeline, after_choice.candidate.pipeline):
                text = f"{service.slug} in {env}: {gate.words()} (from {before_choice.reasons[0]})"
                if text not in lost:
                    lost.append(text)
    return lost


def _stale(key: str, row: PipelineRow | None, base_version: int | None) -> None:
    current = row.current_version if row is not None else 0
    if base_version is not None and base_version != current:
        now = f"is at version {current}" if row is not None else "does not exist yet"
        raise Conflict(
            f"pipeline {key} {now}; this apply was based on version {base_version}: read it again and "
            "apply your change on top of it",
            code="pipelines.stale_version",
            details={"based_on": base_version, "current": current},
        )


def _lost_race(session: Session, key: str, based_on: int) -> Conflict:
    winner = store.reread(session, key)
    current = winner.current_version if winner is not None else based_on + 1
    who = f" by {winner.updated_by}" if winner is not None else ""
    return Conflict(
        f"pipeline {key} moved to version {current}{who} while this apply, based on version {based_on}, "
        "was being written; nothing was changed: read it again and apply your change on top of it",
        code="pipelines.raced",
        details={"based_on": based_on, "current": current},
    )


def apply_pipeline(
    session: Session,
    actor: Actor,
    scope: str,
    ref: str,
    pipeline: Pipeline,
    *,
    environment: str | None = None,
    base_version: int | None = None,
    source: str = "request body",
    header_sets: Collection[str] = (),
    at: datetime,
) -> ApplyResult:
    """Keep `pipeline` as the override of a service or team (in one environment, or all), or as an
    organisation default: version 1, a new version when the body changed, nothing when it did not.

    Team owners apply their team's and their services' pipelines, admins the organisation defaults;
    removing or loosening an approval where the two-person rule applies takes an admin. Of racing
    applies (or one based on a stale `base_version`) one wins and the others get a Conflict naming the
    versions; a change is audited in the same transaction.
    """
    key_ref, resource = _resource(session, scope, ref)
    access.require(actor, "pipelines.edit", resource)
    env = find_environment(session, environment) if environment is not None else None
    problems = _references(session, pipeline, env, source=source, header_sets=header_sets)
    if problems:
        raise invalid(problems)
    key = pipeline_key(scope, key_ref, environment)
    digest = store.body_digest(pipeline.body())
    row = store.row_by_key(session, key)
    current = store.version_of(session, row.id, row.current_version) if row is not None else None
    if row is not None and current is not None and current.digest == digest:
        return ApplyResult(
            outcome="unchanged",
            pipeline=store.pipeline_out(row, digest),
            previous_version=row.current_version,
        )
    _stale(key, row, base_version)
    new = Candidate(scope, key_ref, environment, pipeline, digest)
    weakened = _weakened(session, scope, key_ref, env, new)
    if weakened and not access.can(actor, "admin"):
        raise Forbidden(
            f"only admins may remove or loosen approvals the two-person rule covers: {'; '.join(weakened)}",
            code="pipelines.weakens_approval",
            details={"weakened": weakened},
        )
    previous = row.current_version if row is not None else None
    if row is None:
        row = store.create(
            session,
            scope=scope,
            ref=key_ref,
            environment=environment,
            pipeline=pipeline,
            digest=digest,
            by=actor.label,
            at=at,
        )
        if row is None:
            raise _lost_race(session, key, 0)
    elif not store.advance(session, row, pipeline=pipeline, digest=digest, by=actor.label, at=at):
        raise _lost_race(session, key, previous or 0)
    access.record(
        session,
        actor,
        "pipeline.apply",
        target=("pipeline", key),
        at=at,
        before=None
        if current is None
        else {"version": current.version, "digest": current.digest, "pipeline": current.body},
        after={"version": row.current_version, "digest": digest, "pipeline": pipeline.body()},
        note=f"removes or loosens approvals: {'; '.join(weakened)}" if weakened else None,
    )
    return ApplyResult(
        outcome="created" if previous is None else "updated",
        pipeline=store.pipeline_out(row, digest),
        previous_version=previous,
        weakened=weakened,
    )


# ---------------------------------------------------------------- stored pipelines


def list_pipelines(session: Session) -> list[PipelineOut]:
    """Every override and organisation default, then the product defaults as they ship now (with the id
    and version they are stored under once a deploy has run them)."""
    found = store.current_versions(session)
    listed = [
        store.pipeline_out(row, version.digest) for row, version in found if row.scope_kind != "product"
    ]
    run = {
        (row.scope_ref, version.digest): (row, version)
        for row, version in found
        if row.scope_kind == "product"
    }
    for shipped in _shipped():
        stored = run.get((shipped.ref, shipped.digest))
        listed.append(store.pipeline_out(stored[0], stored[1].digest) if stored else _source(shipped))
    order = {scope: position for position, scope in enumerate(("service", "team", "default", "product"))}
    return sorted(listed, key=lambda p: (order[p.scope], p.ref, p.environment or ""))


def _row(session: Session, pipeline_id: int) -> tuple[PipelineRow, str]:
    found = store.current_versions(session, PipelineRow.id == pipeline_id)
    if not found:
        raise NotFound(f"no pipeline {pipeline_id}", code="pipelines.unknown")
    row, version = found[0]
    return row, version.digest


def get_pipeline(session: Session, pipeline_id: int) -> PipelineDetail:
    row, digest = _row(session, pipeline_id)
    return PipelineDetail(
        **store.pipeline_out(row, digest).model_dump(),
        pipeline=stored_pipeline(session, row.id, row.current_version),
    )


def pipeline_versions(session: Session, pipeline_id: int, *, limit: int = 50) -> list[PipelineVersionOut]:
    """Its versions, newest first."""
    _row(session, pipeline_id)
    return [store.version_out(version) for version in store.versions(session, pipeline_id, limit=limit)]


def stored_pipeline(session: Session, pipeline_id: int, version: int) -> Pipeline:
    """The exact pipeline a deploy recorded (pipeline_version_ref)."""
    found = store.version_of(session, pipeline_id, version)
    if found is None:
        raise NotFound(f"pipeline {pipeline_id} has no version {version}", code="pipelines.unknown_version")
    return Pipeline.model_validate(found.body)


def pipeline_version_ref(session: Session, chosen: ChosenPipeline, *, at: datetime) -> PipelineVersionRef:
    """(pipeline id, version, digest) of the pipeline `chosen` names: what a deploy stores to say what
    it ran. A product default is stored the first time a deploy runs it as it ships (and again when an
    upgrade of Quarterdeck changes it), so every deploy points at a stored body."""
    source = chosen.source
    if source.id is not None and source.version is not None:
        return PipelineVersionRef(source.id, source.version, source.digest)
    if source.scope != "product":
        raise NotFound(f"pipeline {source.key} is not stored", code="pipelines.unknown")
    for _attempt in range(3):
        row = store.row_by_key(session, source.key)
        if row is None:
            row = store.create(
                session,
                scope="product",
                ref=source.ref,
                environment=None,
                pipeline=chosen.pipeline,
                digest=source.digest,
                by=PRODUCT_AUTHOR,
                at=at,
            )
            if row is not None:
                return PipelineVersionRef(row.id, 1, source.digest)
            continue
        current = store.version_of(session, row.id, row.current_version)
        if current is not None and current.digest == source.digest:
            return PipelineVersionRef(row.id, current.version, current.digest)
        if store.advance(
            session, row, pipeline=chosen.pipeline, digest=source.digest, by=PRODUCT_AUTHOR, at=at
        ):
            return PipelineVersionRef(row.id, row.current_version, source.digest)
        store.reread(session, source.key)
    raise Conflict(f"pipeline {source.key} kept changing while it was being stored", code="pipelines.raced")
