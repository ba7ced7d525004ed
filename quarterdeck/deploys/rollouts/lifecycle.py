"""How a rollout moves as a whole: scheduling its step jobs, recording its deploy when it starts
moving, a step succeeding or failing, finishing (and the deploy record following), and starting the
next queued rollout of the same service and environment. Shared by the step job, the controls and
starting; the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.deploys import queries
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.models import Deploy, DeploySource, Release
from quarterdeck.deploys.rollouts import store
from quarterdeck.deploys.rollouts.models import Rollout, RolloutStep
from quarterdeck.deploys.rollouts.states import RolloutState, StepState
from quarterdeck.deploys.schemas import DeployReport
from quarterdeck.deploys.states import ALLOWED as DEPLOY_MOVES
from quarterdeck.deploys.states import DeployStatus
from quarterdeck.jobs import enqueue

JOB_KIND = "deploys.rollout_step"
SYSTEM = Actor.system("rollouts")
"""Who moves a rollout's deploy record when no person does (a step passing, an analysis failing)."""
DEPLOY_STATUS_OF: dict[RolloutState, DeployStatus] = {
    RolloutState.ROLLED_BACK: DeployStatus.ROLLED_BACK,
    RolloutState.ABORTED: DeployStatus.ROLLED_BACK,
    RolloutState.FAILED: DeployStatus.FAILED,
    RolloutState.SUCCEEDED: DeployStatus.SUCCEEDED,
}


def schedule(
    session: Session, rollout: Rollout, *, at: datetime, due_at: datetime | None = None, why: str
) -> None:
    """A job for the rollout's current step (or its rollback), due now unless `due_at` says later. Its
    key names the rollout's revision: every change schedules at most one job, and a retried request
    that made the same change gets the same job."""
    enqueue(
        session,
        JOB_KIND,
        {"rollout_id": rollout.id, "step": rollout.current_step},
        now=at,
        due_at=due_at,
        idempotency_key=f"rollout:{rollout.id}:step:{rollout.current_step}:r{rollout.version}:{why}",
    )


def on_behalf_of(rollout: Rollout) -> Actor:
    """The one who started (or queued) the rollout, as the deploy record names them when a queued
    rollout starts later; their right to deploy was checked when they asked."""
    kind = rollout.started_by_kind if rollout.started_by_kind in ("user", "token", "system") else "system"
    name = rollout.started_by.removeprefix("token:") if kind == "token" else rollout.started_by
    return Actor(
        kind=kind,  # type: ignore[arg-type]
        name=name,
        role=GlobalRole.MEMBER,
        user_id=rollout.started_by_user_id,
        all_teams=True,
    )


def live_version(session: Session, service: str, environment_id: int) -> str | None:
    deploy_id = queries.live_deploy_id(session, (service, environment_id))
    if deploy_id is None:
        return None
    found = queries.by_id(session, deploy_id)
    return found[2].version if found is not None else None


def record_deploy(session: Session, actor: Actor, rollout: Rollout, *, at: datetime) -> int:
    """The deploy record of a rollout that starts moving (source portal, running), through the deploy
    reports' one write path; its id."""
    release = session.get_one(Release, rollout.release_id)
    report = DeployReport(
        id=f"portal:rollout/{rollout.id}",
        service=rollout.service_slug,
        environment=rollout.environment,
        version=rollout.release_version,
        image=release.image,
        commit=release.commit,
        status=DeployStatus.RUNNING,
        started_at=at,
        source=DeploySource.PORTAL,
        notes=f"Rollout {rollout.id}: pipeline {rollout.pipeline_name} version {rollout.pipeline_version}",
    )
    [result] = deploys.report(session, actor, [report], at=at)
    return result.deploy.id


def begin(session: Session, actor: Actor, rollout: Rollout, *, at: datetime) -> Rollout:
    """A queued rollout starts moving: its deploy is recorded, its baseline is what is live now, and
    its first step is scheduled."""
    baseline = live_version(session, rollout.service_slug, rollout.environment_id)
    moved = store.move(session, rollout, to=RolloutState.RUNNING, at=at, reason="started", started_at=at)
    deploy_id = record_deploy(session, actor, moved, at=at)
    moved.deploy_id, moved.baseline_version = deploy_id, baseline
    session.flush()
    schedule(session, moved, at=at, why="start")
    return moved


def follow_deploy(session: Session, rollout: Rollout, to: DeployStatus, *, at: datetime, reason: str) -> None:
    """Move the rollout's deploy record on, if it is not there yet (the live version follows)."""
    if rollout.deploy_id is None:
        return
    deploy = session.get_one(Deploy, rollout.deploy_id, populate_existing=True)
    current = DeployStatus(deploy.status)
    if current is to or to not in _next_statuses(current):
        return
    deploys.move_deploy(session, SYSTEM, deploy.id, expected=current, to=to, reason=reason, at=at)


def _next_statuses(status: DeployStatus) -> frozenset[DeployStatus]:
    return DEPLOY_MOVES[status]


def finish(
    session: Session, rollout: Rollout, to: RolloutState, *, at: datetime, reason: str, **values: Any
) -> Rollout:
    """End a rollout in a final state; its deploy record follows, then the next queued rollout of the
    same service and environment starts."""
    steps = store.steps_of(session, rollout.id)
    moved = store.move(
        session, rollout, to=to, at=at, reason=reason, finished_at=at, promote_requested=False, **values
    )
    store.skip_steps(session, steps, at=at, note=f"not reached: the rollout {to.value.replace('_', ' ')}")
    follow_deploy(session, moved, DEPLOY_STATUS_OF[to], at=at, reason=f"rollout {moved.id}: {reason}")
    start_next(session, moved.service_slug, moved.environment_id, at=at)
    return moved


def start_next(session: Session, service: str, environment_id: int, *, at: datetime) -> Rollout | None:
    """The oldest queued rollout of the service and environment starts, when none is active."""
    if store.active_for(session, service, environment_id) is not None:
        return None
    queued = store.queued_for(session, service, environment_id)
    if not queued:
        return None
    return begin(session, on_behalf_of(queued[0]), queued[0], at=at)


def succeed_step(
    session: Session, rollout: Rollout, step: RolloutStep, *, at: datetime, note: str = "", **values: Any
) -> Rollout:
    """The current step passed: the next one is scheduled, or the rollout succeeded after the last."""
    total = len(store.steps_of(session, rollout.id))
    if step.position + 1 >= total:
        moved = store.move(session, rollout, at=at, current_step=total, **values)
        store.move_step(session, step, StepState.SUCCEEDED, at=at, note=note)
        return finish(session, moved, RolloutState.SUCCEEDED, at=at, reason="every step passed")
    moved = store.move(
        session, rollout, to=RolloutState.RUNNING, at=at, current_step=step.position + 1, **values
    )
    store.move_step(session, step, StepState.SUCCEEDED, at=at, note=note)
    schedule(session, moved, at=at, why="next")
    return moved


def fail_step(session: Session, rollout: Rollout, step: RolloutStep, *, at: datetime, reason: str) -> Rollout:
    """The current step failed: the pipeline's on_failure decides (roll back, or pause for a person)."""
    detail = {**step.detail, "error": reason}
    if rollout.on_failure == "pause":
        moved = store.move(session, rollout, to=RolloutState.PAUSED, at=at, reason=reason, paused_at=at)
        store.move_step(session, step, StepState.FAILED, at=at, detail=detail, note=reason)
        return moved
    moved = store.move(
        session,
        rollout,
        to=RolloutState.ROLLING_BACK,
        at=at,
        reason=reason,
        finish_as=RolloutState.ROLLED_BACK.value,
    )
    store.move_step(session, step, StepState.FAILED, at=at, detail=detail, note=reason)
    schedule(session, moved, at=at, why="rollback")
    return moved


def pause(
    session: Session, rollout: Rollout, step: RolloutStep, *, at: datetime, reason: str, **values: Any
) -> Rollout:
    moved = store.move(session, rollout, to=RolloutState.PAUSED, at=at, reason=reason, paused_at=at, **values)
    store.add_event(session, rollout.id, "note", {"step": step.position, "note": reason}, at=at)
    return moved
