"""Reading rollouts: one rollout as the API, the CLI and the live page show it (every figure ready to
show: timings, countdowns, analysis values against thresholds, who must approve and since when), its
events after an id, and a step's log."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quarterdeck.deploys.pipelines import parse_duration
from quarterdeck.deploys.pipelines.expressions import duration_words
from quarterdeck.deploys.pipelines.format import (
    AnalysisStep,
    ApprovalStep,
    DeployStep,
    NotifyStep,
    RunStep,
    Step,
    WaitStep,
)
from quarterdeck.deploys.rollouts import approvals, controls, store
from quarterdeck.deploys.rollouts.models import Rollout, RolloutEvent, RolloutStep
from quarterdeck.deploys.rollouts.schemas import (
    AnalysisOut,
    ApprovalOut,
    IntervalOut,
    PipelineRefOut,
    RolloutBriefOut,
    RolloutEventOut,
    RolloutEvents,
    RolloutOut,
    StepLogOut,
    StepOut,
)
from quarterdeck.deploys.rollouts.states import FINAL, RolloutState, StepState

STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)
MAX_EVENTS = 500


def title(spec: Step, bake_seconds: int) -> str:
    """One sentence per step, as the page lists them."""
    if isinstance(spec, DeployStep):
        deploy = spec.deploy
        if deploy.full:
            return "Send all of the traffic to the new version"
        if deploy.weight is not None:
            return f"Send {deploy.weight}% of the traffic to the new version"
        return f"Run the new version on {deploy.instances} instances"
    if isinstance(spec, WaitStep):
        if spec.wait.duration:
            return f"Wait {duration_words(parse_duration(spec.wait.duration))}"
        return f"Wait the tier's bake time ({duration_words(bake_seconds)})"
    if isinstance(spec, AnalysisStep):
        analysis = spec.analysis
        return f"Analyse every {duration_words(parse_duration(analysis.interval))}, {analysis.count} times"
    if isinstance(spec, ApprovalStep):
        return "Approval by a second person" if spec.approval.two_person else "Approval"
    if isinstance(spec, NotifyStep):
        return f"Notify {urlsplit(spec.notify.webhook).hostname}"
    if isinstance(spec, RunStep):
        return f"Run {spec.run.command[0]}"
    return "Step"


def _analysis(spec: AnalysisStep, detail: dict[str, Any]) -> AnalysisOut:
    a = spec.analysis
    return AnalysisOut(
        count=a.count,
        interval_seconds=parse_duration(a.interval),
        failure_limit=a.failure_limit,
        inconclusive_limit=a.inconclusive_limit,
        measured=int(detail.get("measured", 0)),
        failures=int(detail.get("failures", 0)),
        inconclusive=int(detail.get("inconclusive", 0)),
        intervals=[IntervalOut.model_validate(interval) for interval in detail.get("intervals", [])],
    )


def _approval(session: Session, step: RolloutStep, spec: ApprovalStep, at: datetime) -> ApprovalOut:
    request = approvals.request_of(session, step)
    asked = step.started_at
    waiting = None
    if asked is not None:
        waiting = ((step.finished_at or at) - asked).total_seconds()
    return ApprovalOut(
        request_id=request.id if request else None,
        status=request.status if request else "not asked yet",
        who=str(step.detail.get("who") or ""),
        two_person=spec.approval.two_person,
        asked_at=asked,
        waiting_seconds=waiting,
        decided_by=request.decided_by if request else None,
        decided_at=request.decided_at if request else None,
    )


def step_out(session: Session, rollout: Rollout, step: RolloutStep, at: datetime) -> StepOut:
    spec = STEP_ADAPTER.validate_python(step.spec)
    state = StepState(step.state)
    waiting, active = step.waiting_seconds, step.active_seconds
    if step.state_since is not None and state is StepState.WAITING:
        waiting += max(0.0, (at - step.state_since).total_seconds())
    left = max(0.0, (step.due_at - at).total_seconds()) if step.due_at is not None else None
    return StepOut(
        position=step.position,
        kind=step.kind,
        name=step.name,
        title=title(spec, rollout.bake_seconds),
        state=state,
        runs=step.runs,
        started_at=step.started_at,
        finished_at=step.finished_at,
        active_seconds=round(active, 3),
        waiting_seconds=round(waiting, 3),
        due_at=step.due_at,
        seconds_left=left,
        skippable=isinstance(spec, WaitStep) and spec.wait.skippable,
        spec=step.spec,
        analysis=_analysis(spec, step.detail) if isinstance(spec, AnalysisStep) else None,
        approval=_approval(session, step, spec, at) if isinstance(spec, ApprovalStep) else None,
        error=step.detail.get("error") if state is StepState.FAILED or step.detail.get("error") else None,
        log_lines=step.log_lines,
        log_dropped=step.log_dropped,
    )


def _last_event(session: Session, rollout_id: int) -> int:
    found = session.scalar(select(func.max(RolloutEvent.id)).where(RolloutEvent.rollout_id == rollout_id))
    return int(found or 0)


def rollout_out(session: Session, rollout: Rollout, *, at: datetime) -> RolloutOut:
    steps = store.steps_of(session, rollout.id)
    outs = [step_out(session, rollout, step, at) for step in steps]
    state = RolloutState(rollout.state)
    behind = None
    if state is RolloutState.QUEUED:
        active = store.active_for(session, rollout.service_slug, rollout.environment_id)
        behind = active.id if active is not None else None
    return RolloutOut(
        id=rollout.id,
        url=f"/rollouts/{rollout.id}",
        service=rollout.service_slug,
        environment=rollout.environment,
        version=rollout.release_version,
        image=rollout.image,
        baseline_version=rollout.baseline_version,
        state=state,
        final=state.final,
        reason=rollout.reason,
        current_step=rollout.current_step,
        weight=rollout.weight,
        revision=rollout.version,
        started_by=rollout.started_by,
        created_at=rollout.created_at,
        started_at=rollout.started_at,
        finished_at=rollout.finished_at,
        deploy_id=rollout.deploy_id,
        deploy_url=f"/deploys/{rollout.deploy_id}" if rollout.deploy_id else None,
        emergency_request=rollout.emergency_request_id,
        queued_behind=behind,
        pipeline=PipelineRefOut(
            id=rollout.pipeline_id,
            version=rollout.pipeline_version,
            digest=rollout.pipeline_digest,
            name=rollout.pipeline_name,
            on_failure=rollout.on_failure,
        ),
        steps=outs,
        active_seconds=round(sum(step.active_seconds for step in outs), 3),
        waiting_seconds=round(sum(step.waiting_seconds for step in outs), 3),
        last_event_id=_last_event(session, rollout.id),
        controls=controls.allowed(rollout, steps),
    )


def rollout_view(session: Session, rollout_id: int, *, at: datetime) -> RolloutOut:
    return rollout_out(session, store.get(session, rollout_id), at=at)


def rollout_events(
    session: Session, rollout_id: int, *, after: int = 0, limit: int = MAX_EVENTS
) -> RolloutEvents:
    """The events after id `after`, oldest first, at most `limit` (500)."""
    rollout = store.get(session, rollout_id)
    events = store.events_after(session, rollout_id, after, limit=max(1, min(limit, MAX_EVENTS)))
    state = RolloutState(rollout.state)
    return RolloutEvents(
        rollout_id=rollout_id,
        state=state,
        final=state.final,
        events=[RolloutEventOut(id=e.id, at=e.at, type=e.type, payload=e.payload) for e in events],
        last_id=events[-1].id if events else after,
    )


def step_log(session: Session, rollout_id: int, position: int) -> StepLogOut:
    step = store.step_of(session, rollout_id, position)
    return StepLogOut(
        rollout_id=rollout_id,
        position=position,
        lines=store.log_of(session, rollout_id, position),
        dropped=step.log_dropped,
    )


def service_rollouts(session: Session, service_slug: str, *, limit: int) -> list[RolloutBriefOut]:
    """The service's rollouts that are not finished (any age, newest first), then its `limit` newest
    finished ones."""
    final = [state.value for state in FINAL]
    unfinished = select(Rollout).where(Rollout.service_slug == service_slug, Rollout.state.not_in(final))
    finished = (
        select(Rollout)
        .where(Rollout.service_slug == service_slug, Rollout.state.in_(final))
        .order_by(Rollout.id.desc())
        .limit(limit)
    )
    rows = [*session.scalars(unfinished.order_by(Rollout.id.desc())), *session.scalars(finished)]
    return [
        RolloutBriefOut(
            id=row.id,
            url=f"/rollouts/{row.id}",
            environment=row.environment,
            version=row.release_version,
            state=RolloutState(row.state),
            started_by=row.started_by,
            created_at=row.created_at,
            finished_at=row.finished_at,
            reason=row.reason,
        )
        for row in rows
    ]


def step_logs(session: Session, rollout_id: int) -> dict[int, list[str]]:
    """The lines of every step of a rollout, by step position (the page shows them all at once)."""
    return store.logs_of(session, rollout_id)
