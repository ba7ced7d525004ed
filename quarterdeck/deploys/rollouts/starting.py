"""Starting a rollout: the checks that refuse it (unknown service, environment or version, no right to
deploy, a frozen environment, another rollout running there), the pipeline it snapshots, and its first
step scheduled in the same transaction. The caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from difflib import get_close_matches
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceRef
from quarterdeck.db import RUNTIME_KEY
from quarterdeck.deploys.models import Environment, Release
from quarterdeck.deploys.pipelines import pipeline_for, pipeline_version_ref
from quarterdeck.deploys.pipelines.format import ApprovalSpec, ApprovalStep, TeamRoleApprover
from quarterdeck.deploys.pipelines.gates import has_second_person
from quarterdeck.deploys.reading import find_environment
from quarterdeck.deploys.releases import release_from_registry
from quarterdeck.deploys.rollouts import approvals, freezes, lifecycle, store
from quarterdeck.deploys.rollouts.models import Rollout, RolloutStep
from quarterdeck.deploys.rollouts.states import RolloutState, StepState
from quarterdeck.errors import Conflict, Forbidden, NotFound

MAX_QUEUED = 5
"""Rollouts queued behind the active one of a service in an environment, at most."""
RELEASE_CANDIDATES = 500


def _release(session: Session, ref: ServiceRef, version: str, *, at: datetime) -> Release:
    """The release of `version`: one CI reported, or an image tagged `version` in the service's
    registry repository (recorded as a release now); else NotFound naming the nearest versions."""
    service = ref.slug
    release = session.scalar(
        select(Release).where(Release.service_slug == service, Release.version == version)
    )
    if release is not None:
        return release
    runtime = session.info.get(RUNTIME_KEY)
    registry = runtime.registry if runtime is not None else None
    found = release_from_registry(session, ref, version, registry=registry, at=at)
    if found is not None:
        return found
    known = list(
        session.scalars(
            select(Release.version)
            .where(Release.service_slug == service)
            .order_by(Release.id.desc())
            .limit(RELEASE_CANDIDATES)
        )
    )
    near = get_close_matches(version, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(v) for v in near)}?" if near else ""
    newest = f" (its newest: {', '.join(known[:3])})" if known and not near else ""
    if not known:
        hint = "; it has no releases yet: CI reports them with POST /api/v1/deploys"
    raise NotFound(
        f"{service} has no release {version!r}{hint}{newest}",
        code="rollouts.unknown_version",
        details=[{"field": "version", "message": "not a release of the service", "suggestions": near}],
    )


def _frozen(
    session: Session, ref: ServiceRef, env: Environment, version: str, *, emergency: bool, at: datetime
) -> int | None:
    """Refuse a start into a frozen environment, unless it is an emergency with an approved request
    (whose id is returned, to be kept and audited)."""
    window = freezes.freeze_at(session, env, at)
    if window is None:
        return None
    words = freezes.words(window, env, at)
    if not emergency:
        raise Conflict(
            f"{words}: deploys are refused; an emergency deploy needs an approved request "
            f"(POST /api/v1/services/{ref.slug}/emergency-requests, then start with emergency: true)",
            code="rollouts.frozen",
            details={"freeze": window.id, "environment": env.slug},
        )
    request = approvals.approved_emergency(session, ref.slug, env.slug, version)
    if request is None:
        raise Forbidden(
            f"{words}: an emergency deploy of {ref.slug} {version} needs an approved emergency request; "
            f"ask with POST /api/v1/services/{ref.slug}/emergency-requests and have a second person "
            "approve it",
            code="rollouts.emergency_not_approved",
            details={"freeze": window.id, "environment": env.slug},
        )
    return request.id


def _busy(session: Session, active: Rollout, queued: int, *, queue: bool) -> None:
    """Refuse a start while another rollout runs there, unless it asks to queue (and there is room)."""
    where = f"{active.service_slug} in {active.environment}"
    named = (
        f"rollout {active.id} of {where} is {active.state.replace('_', ' ')} "
        f"(version {active.release_version}, "
        f"started by {active.started_by}, /rollouts/{active.id})"
    )
    details = {
        "rollout": active.id,
        "version": active.release_version,
        "state": active.state,
        "started_by": active.started_by,
        "url": f"/rollouts/{active.id}",
    }
    if not queue:
        raise Conflict(
            f"{named}: one rollout at a time; wait for it, abort it, or queue this one (queue: true)",
            code="rollouts.busy",
            details=details,
        )
    if queued >= MAX_QUEUED:
        raise Conflict(
            f"{named} and {queued} more are queued behind it, the most allowed",
            code="rollouts.queue_full",
            details=details,
        )


def _steps(chosen_steps: list[Any], ref: ServiceRef, env: Environment, pipeline_ok: bool) -> list[Any]:
    """The steps to run: the pipeline's, with a second person's approval first when the two-person rule
    covers the deploy and the pipeline has none before traffic moves."""
    resource = ref.resource(environment=env.slug, production=env.production)
    if access.needs_second_approval(resource) and not pipeline_ok:
        gate = ApprovalStep(
            approval=ApprovalSpec(
                name="second person", who=TeamRoleApprover(team_role="member"), two_person=True
            )
        )
        return [gate, *chosen_steps]
    return chosen_steps


def start_rollout(
    session: Session,
    actor: Actor,
    service: str,
    version: str,
    environment: str,
    *,
    queue: bool = False,
    emergency: bool = False,
    at: datetime,
) -> Rollout:
    """Start deploying `version` of a service to an environment through the pipeline it gets, or queue
    it behind the one running there. Refused, changing nothing, for an unknown service, environment or
    version, an actor who may not deploy the service, a frozen environment (unless an approved
    emergency), or another active rollout there (unless `queue`). Of two racing starts the database
    lets one be active (ux_rollouts_one_active): the other's transaction fails and, run again, is
    refused naming the first."""
    ref = catalog.service_ref(session, service)
    env = find_environment(session, environment)
    resource = ref.resource(environment=env.slug, production=env.production)
    access.require(actor, "deploy.start", resource)
    release = _release(session, ref, version, at=at)
    emergency_request = _frozen(session, ref, env, version, emergency=emergency, at=at)
    active = store.active_for(session, ref.slug, env.id)
    if active is not None:
        _busy(session, active, len(store.queued_for(session, ref.slug, env.id)), queue=queue)
    chosen = pipeline_for(session, ref.slug, env.slug)
    pinned = pipeline_version_ref(session, chosen, at=at)
    steps = _steps(list(chosen.pipeline.steps), ref, env, has_second_person(chosen.pipeline))
    rollout = Rollout(
        service_slug=ref.slug,
        environment_id=env.id,
        environment=env.slug,
        release_id=release.id,
        release_version=release.version,
        image=release.image,
        service_tier=ref.tier,
        state=(RolloutState.QUEUED if active is not None else RolloutState.RUNNING).value,
        version=1,
        current_step=0,
        weight=0,
        prepared=False,
        promote_requested=False,
        reason="",
        pipeline_id=pinned.pipeline_id,
        pipeline_version=pinned.version,
        pipeline_digest=pinned.digest,
        pipeline_name=chosen.pipeline.name,
        pipeline_body=chosen.pipeline.body(),
        on_failure=chosen.pipeline.on_failure,
        bake_seconds=chosen.bake_seconds,
        started_by=actor.label,
        started_by_kind=actor.kind,
        started_by_user_id=actor.user_id,
        emergency_request_id=emergency_request,
        created_at=at,
        updated_at=at,
    )
    session.add(rollout)
    session.flush()
    for position, step in enumerate(steps):
        session.add(
            RolloutStep(
                rollout_id=rollout.id,
                position=position,
                kind=step.kind,
                name=step.title,
                spec=step.model_dump(mode="json"),
                state=StepState.PENDING.value,
                runs=0,
                active_seconds=0.0,
                waiting_seconds=0.0,
                detail={},
                log_lines=0,
                log_dropped=0,
            )
        )
    session.flush()
    store.add_event(
        session,
        rollout.id,
        "state",
        {
            "from": None,
            "to": rollout.state,
            "reason": f"queued behind rollout {active.id}" if active is not None else "started",
            "pipeline": {"id": pinned.pipeline_id, "version": pinned.version, "digest": pinned.digest},
        },
        at=at,
    )
    if active is None:
        rollout.baseline_version = lifecycle.live_version(session, ref.slug, env.id)
        rollout.started_at = at
        rollout.deploy_id = lifecycle.record_deploy(session, actor, rollout, at=at)
        session.flush()
        lifecycle.schedule(session, rollout, at=at, why="start")
    access.record(
        session,
        actor,
        "rollout.start",
        target=("rollout", str(rollout.id)),
        at=at,
        after=_audited(rollout, emergency_request),
    )
    return rollout


def _audited(rollout: Rollout, emergency_request: int | None) -> dict[str, Any]:
    return {
        "service": rollout.service_slug,
        "environment": rollout.environment,
        "version": rollout.release_version,
        "state": rollout.state,
        "pipeline": f"{rollout.pipeline_name} v{rollout.pipeline_version} ({rollout.pipeline_digest[:12]})",
        "emergency_request": emergency_request,
        "deploy": rollout.deploy_id,
    }
