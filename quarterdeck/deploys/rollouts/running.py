"""The step job (`deploys.rollout_step`): one run of a rollout's current step, or of its rollback.

Each run reads the rollout through a reading session, does the step's outside work (a driver call,
Prometheus queries, a webhook, a command) holding no transaction, then writes the outcome through the
job's session, starting with a guarded move of the rollout: if anything changed the rollout since it
was read (a pause, an abort, another worker), nothing is written and the run ends. A job that finds
its step already done, or the rollout paused, ends at once: only the rollout's state says what runs.

Waits are due times: a step that must wait writes when it is due and raises RetryLater; a decision
on an approval, a skipped wait or a resume schedules a job of its own for the step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from quarterdeck.db import RUNTIME_KEY
from quarterdeck.deploys import queries
from quarterdeck.deploys.drivers import DeployDriver, StepTarget, deploy_drivers
from quarterdeck.deploys.pipelines import fill_placeholders, parse_duration
from quarterdeck.deploys.pipelines.format import (
    AnalysisStep,
    ApprovalStep,
    DeployStep,
    NotifyStep,
    RunStep,
    Step,
    WaitStep,
)
from quarterdeck.deploys.rollouts import analysis, approvals, effects, lifecycle, store
from quarterdeck.deploys.rollouts.effects import Done
from quarterdeck.deploys.rollouts.models import Rollout, RolloutStep
from quarterdeck.deploys.rollouts.states import RolloutState, StepState
from quarterdeck.deploys.states import DeployStatus
from quarterdeck.errors import QuarterdeckError
from quarterdeck.jobs import JobContext, PermanentFailure, RetryLater
from quarterdeck.runtime import Runtime

STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)
APPROVAL_RECHECK_SECONDS = 60.0
"""How often a waiting approval is looked at again (a decision wakes the step at once anyway)."""
WEBHOOK_ATTEMPTS = 3
WEBHOOK_RETRY_SECONDS = 10.0
STEPPING = frozenset({RolloutState.RUNNING, RolloutState.WAITING_APPROVAL})


class RollbackFailed(Exception):
    """A rollback that did not work this attempt: the job runner tries again after its backoff."""


@dataclass(frozen=True)
class Run:
    """One run of a step: what it read, and where to write."""

    ctx: JobContext
    runtime: Runtime
    rollout: Rollout
    """As read before acting: its version guards every write."""
    step: RolloutStep
    now: datetime

    @property
    def session(self) -> Session:
        return self.ctx.session

    def placeholders(self) -> dict[str, str]:
        values = {
            "service": self.rollout.service_slug,
            "env": self.rollout.environment,
            "version": self.rollout.release_version,
        }
        if self.rollout.baseline_version is not None:
            values["baseline_version"] = self.rollout.baseline_version
        return values

    def target(self, *, instances: int | None = None) -> StepTarget:
        return StepTarget(
            service=self.rollout.service_slug,
            environment=self.rollout.environment,
            version=self.rollout.release_version,
            image=self.rollout.image,
            baseline_version=self.rollout.baseline_version,
            instances=instances,
            variables={"rollout": str(self.rollout.id), "step": str(self.step.position)},
        )

    def driver(self) -> DeployDriver:
        return deploy_drivers(self.runtime).driver_for(self.rollout.service_slug, self.rollout.environment)

    def lock(self) -> tuple[Rollout, RolloutStep]:
        """The guarded move that starts every write: Raced when the rollout changed since it was read."""
        fresh = store.move(self.session, self.rollout, at=self.now)
        return fresh, store.step_of(self.session, fresh.id, self.step.position)


def _runtime(ctx: JobContext) -> Runtime:
    runtime = ctx.session.info.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise PermanentFailure("the worker's sessions were not made by a Runtime: no drivers to deploy with")
    return runtime


def _payload(payload: Any) -> tuple[int, int]:
    try:
        rollout_id, step = payload["rollout_id"], payload["step"]
        if not (isinstance(rollout_id, int) and isinstance(step, int)):
            raise TypeError("rollout_id and step are integers")
    except (TypeError, KeyError) as exc:
        raise PermanentFailure(f"{lifecycle.JOB_KIND}: bad payload {payload!r}: {exc}") from exc
    return rollout_id, step


def run_step(ctx: JobContext) -> None:
    """The handler of `deploys.rollout_step` jobs."""
    rollout_id, position = _payload(ctx.payload)
    runtime = _runtime(ctx)
    with runtime.sessions() as reading:
        rollout = store.get(reading, rollout_id)
        steps = store.steps_of(reading, rollout_id)
        request = approvals.request_of(reading, steps[position]) if position < len(steps) else None
    state = RolloutState(rollout.state)
    now = ctx.clock.now()
    if state is RolloutState.ROLLING_BACK:
        _roll_back(Run(ctx, runtime, rollout, steps[min(rollout.current_step, len(steps) - 1)], now))
        return
    if state not in STEPPING or rollout.current_step != position or position >= len(steps):
        return  # paused, queued, finished, or this step is done: a later job (or none) takes over
    run = Run(ctx, runtime, rollout, steps[position], now)
    try:
        if rollout.promote_requested:
            _promote(run)
            return
        spec = STEP_ADAPTER.validate_python(run.step.spec)
        if isinstance(spec, DeployStep):
            _deploy(run, spec)
        elif isinstance(spec, WaitStep):
            _wait(run, spec)
        elif isinstance(spec, AnalysisStep):
            _analyse(run, spec)
        elif isinstance(spec, ApprovalStep):
            _approval(run, spec, request)
        elif isinstance(spec, NotifyStep):
            _notify(run, spec)
        elif isinstance(spec, RunStep):
            _command(run, spec)
    except store.Raced:
        return  # someone changed the rollout meanwhile (a pause, an abort): their change stands


def _fail_or_succeed(run: Run, done: Done, *, began: float, what: str, **values: Any) -> None:
    rollout, step = run.lock()
    step.active_seconds += time.monotonic() - began
    store.add_log(run.session, step, done.log, at=run.now)
    if done.ok:
        lifecycle.succeed_step(run.session, rollout, step, at=run.now, **values)
    else:
        reason = f"Step {step.position + 1} ({what}) failed: {done.error}"
        lifecycle.fail_step(run.session, rollout, step, at=run.now, reason=reason)


def _deploy(run: Run, spec: DeployStep) -> None:
    deploy = spec.deploy
    instances = deploy.instances if isinstance(deploy.instances, int) else None
    weight = deploy.weight if deploy.weight is not None else (None if deploy.full else run.rollout.weight)
    began = time.monotonic()
    try:
        driver = run.driver()
    except QuarterdeckError as exc:
        done = Done(False, error=exc.message)
    else:
        done = effects.move_traffic(
            driver,
            run.target(instances=instances),
            rollout_id=run.rollout.id,
            position=run.step.position,
            prepared=run.rollout.prepared,
            weight=weight,
            promote=deploy.full,
        )
    what = (
        f"deploy {deploy.weight} %" if deploy.weight is not None else f"deploy {deploy.instances} instances"
    )
    if not done.ok:
        _fail_or_succeed(run, done, began=began, what=what)
        return
    new_weight = 100 if deploy.full else (weight if weight is not None else run.rollout.weight)
    rollout, step = run.lock()
    step.active_seconds += time.monotonic() - began
    store.add_log(run.session, step, done.log, at=run.now)
    store.add_event(
        run.session, rollout.id, "weight", {"weight": new_weight, "step": step.position}, at=run.now
    )
    if deploy.full:
        reason = f"rollout {rollout.id}: promoted to 100 %"
        lifecycle.follow_deploy(run.session, rollout, DeployStatus.SUCCEEDED, at=run.now, reason=reason)
    lifecycle.succeed_step(run.session, rollout, step, at=run.now, weight=new_weight, prepared=True)


def _wait(run: Run, spec: WaitStep) -> None:
    step = run.step
    if StepState(step.state) is StepState.PENDING:
        seconds = parse_duration(spec.wait.duration) if spec.wait.duration else run.rollout.bake_seconds
        rollout, fresh = run.lock()
        if seconds <= 0:
            lifecycle.succeed_step(run.session, rollout, fresh, at=run.now, note="no bake time for this tier")
            return
        due = run.now + timedelta(seconds=seconds)
        store.move_step(run.session, fresh, StepState.WAITING, at=run.now, due_at=due)
        raise RetryLater(seconds, f"wait until {due.isoformat()}")
    due_at = step.due_at or run.now
    if run.now < due_at:
        raise RetryLater((due_at - run.now).total_seconds(), f"wait until {due_at.isoformat()}")
    rollout, fresh = run.lock()
    lifecycle.succeed_step(run.session, rollout, fresh, at=run.now)


def _analyse(run: Run, spec: AnalysisStep) -> None:
    analysis_spec = spec.analysis
    interval = parse_duration(analysis_spec.interval)
    step = run.step
    if StepState(step.state) is StepState.PENDING:
        rollout, fresh = run.lock()
        due = run.now + timedelta(seconds=interval)
        empty: dict[str, Any] = {"measured": 0, "failures": 0, "inconclusive": 0, "intervals": []}
        store.move_step(run.session, fresh, StepState.WAITING, at=run.now, due_at=due, detail=empty)
        raise RetryLater(interval, "first measurement")
    due_at = step.due_at or run.now
    if run.now < due_at:
        raise RetryLater((due_at - run.now).total_seconds(), "next measurement")
    results = effects.measure(
        run.runtime.prometheus,
        analysis_spec,
        run.placeholders(),
        baseline_version=run.rollout.baseline_version,
    )
    rollout, fresh = run.lock()
    detail, verdict = analysis.record_interval(dict(fresh.detail), results, at=run.now)
    store.add_event(
        run.session,
        rollout.id,
        "analysis",
        {
            "step": fresh.position,
            "n": detail["measured"],
            "verdict": verdict,
            "results": detail["intervals"][-1]["results"],
        },
        at=run.now,
    )
    move = analysis.next_move(
        count=analysis_spec.count,
        failure_limit=analysis_spec.failure_limit,
        inconclusive_limit=analysis_spec.inconclusive_limit,
        detail=detail,
    )
    name = fresh.name
    if move == "fail":
        reason = analysis.failure_sentence(detail, count=analysis_spec.count, name=name)
        fresh.detail = detail
        lifecycle.fail_step(run.session, rollout, fresh, at=run.now, reason=reason)
    elif move == "pause":
        reason = analysis.inconclusive_sentence(detail, count=analysis_spec.count, name=name)
        due = run.now + timedelta(seconds=interval)
        store.move_step(
            run.session, fresh, StepState.WAITING, at=run.now, detail=detail, due_at=due, note=reason
        )
        lifecycle.pause(run.session, rollout, fresh, at=run.now, reason=reason)
    elif move == "succeed":
        fresh.detail = detail
        lifecycle.succeed_step(run.session, rollout, fresh, at=run.now)
    else:
        due = run.now + timedelta(seconds=interval)
        store.move_step(run.session, fresh, StepState.WAITING, at=run.now, detail=detail, due_at=due)
        raise RetryLater(interval, "next measurement")


def _approval(run: Run, spec: ApprovalStep, request: approvals.Request | None) -> None:
    if StepState(run.step.state) is StepState.PENDING:
        rollout, fresh = run.lock()
        asked = approvals.ask(run.session, rollout, fresh, spec.approval, at=run.now)
        store.move(run.session, rollout, to=RolloutState.WAITING_APPROVAL, at=run.now, reason=asked.waiting)
        detail = {"request": asked.id, "who": asked.who, "two_person": spec.approval.two_person}
        store.move_step(run.session, fresh, StepState.WAITING, at=run.now, detail=detail, note=asked.waiting)
        raise RetryLater(APPROVAL_RECHECK_SECONDS, "waiting for a decision")
    if request is None or request.status == "pending":
        raise RetryLater(APPROVAL_RECHECK_SECONDS, "waiting for a decision")
    rollout, fresh = run.lock()
    who = request.decided_by or "someone"
    decided = request.decided_at.isoformat() if request.decided_at else None
    detail = {**fresh.detail, "status": request.status, "decided_by": who, "decided_at": decided}
    fresh.detail = detail
    if request.status in ("approved", "not_required"):
        if spec.approval.two_person and rollout.deploy_id is not None:
            queries.link_approval(run.session, rollout.deploy_id, request.id)
        lifecycle.succeed_step(run.session, rollout, fresh, at=run.now, note=f"approved by {who}")
        return
    why = f": {request.reason}" if request.reason else ""
    reason = f"Approval {request.id} was rejected by {who}{why}."
    lifecycle.fail_step(run.session, rollout, fresh, at=run.now, reason=reason)


def _notify(run: Run, spec: NotifyStep) -> None:
    sets = run.runtime.settings.webhook_headers
    headers = {
        name: value for header_set in spec.notify.headers for name, value in sets.get(header_set, {}).items()
    }
    body = {
        "rollout": run.rollout.id,
        "service": run.rollout.service_slug,
        "environment": run.rollout.environment,
        "version": run.rollout.release_version,
        "baseline_version": run.rollout.baseline_version,
        "state": run.rollout.state,
        "step": run.step.position,
        "weight": run.rollout.weight,
        "url": f"/rollouts/{run.rollout.id}",
        "at": run.now.isoformat(),
    }
    began = time.monotonic()
    done = effects.post_webhook(
        effects.webhook_client(run.runtime),
        spec.notify.webhook,
        body,
        key=effects.step_key(run.rollout.id, run.step.position, "notify"),
        headers=headers,
    )
    attempts = int(run.step.detail.get("attempts", 0)) + 1
    if not done.ok and attempts < WEBHOOK_ATTEMPTS:
        _rollout, fresh = run.lock()
        store.add_log(run.session, fresh, done.log, at=run.now)
        due = run.now + timedelta(seconds=WEBHOOK_RETRY_SECONDS)
        detail = {**fresh.detail, "attempts": attempts, "error": done.error}
        store.move_step(
            run.session,
            fresh,
            StepState.WAITING,
            at=run.now,
            due_at=due,
            detail=detail,
            note=done.error or "",
        )
        raise RetryLater(WEBHOOK_RETRY_SECONDS, "webhook again")
    _fail_or_succeed(run, done, began=began, what=f"notify {spec.notify.webhook}")


def _command(run: Run, spec: RunStep) -> None:
    argv = [fill_placeholders(argument, run.placeholders()) for argument in spec.run.command]
    began = time.monotonic()
    done = effects.run_command(argv, timeout=float(parse_duration(spec.run.timeout)))
    _fail_or_succeed(run, done, began=began, what=f"run {argv[0]}")


def _promote(run: Run) -> None:
    """Promote now: straight to 100 % from wherever the rollout is, the remaining steps skipped."""
    began = time.monotonic()
    try:
        driver = run.driver()
    except QuarterdeckError as exc:
        done = Done(False, error=exc.message)
    else:
        done = effects.move_traffic(
            driver,
            run.target(),
            rollout_id=run.rollout.id,
            position=run.step.position,
            prepared=run.rollout.prepared,
            weight=None,
            promote=True,
        )
    rollout, step = run.lock()
    step.active_seconds += time.monotonic() - began
    store.add_log(run.session, step, done.log, at=run.now)
    if not done.ok:
        reason = f"Promoting to 100 % failed: {done.error}"
        lifecycle.fail_step(run.session, rollout, step, at=run.now, reason=reason)
        return
    store.add_event(run.session, rollout.id, "weight", {"weight": 100, "step": step.position}, at=run.now)
    lifecycle.finish(
        run.session,
        rollout,
        RolloutState.SUCCEEDED,
        at=run.now,
        reason="promoted to 100 %",
        weight=100,
        prepared=True,
    )


def _roll_back(run: Run) -> None:
    """Return the traffic to the baseline, then end the rollout as it was asked to end (rolled back
    after a failure, aborted by a person). A rollback that keeps failing ends it as failed."""
    began = time.monotonic()
    if not run.rollout.prepared:
        done = Done(True, ("nothing to roll back: the new version never took traffic",))
    else:
        try:
            driver = run.driver()
        except QuarterdeckError as exc:
            done = Done(False, error=exc.message)
        else:
            done = effects.roll_back(
                driver, run.target(), rollout_id=run.rollout.id, position=run.rollout.current_step
            )
    if not done.ok and run.ctx.attempt < run.ctx.max_attempts:
        raise RollbackFailed(f"rollback of rollout {run.rollout.id} failed: {done.error}")
    try:
        rollout, step = run.lock()
    except store.Raced:
        return
    step.active_seconds += time.monotonic() - began
    store.add_log(run.session, step, done.log, at=run.now)
    if done.ok:
        store.add_event(run.session, rollout.id, "weight", {"weight": 0, "step": step.position}, at=run.now)
        final = RolloutState(rollout.finish_as or RolloutState.ROLLED_BACK.value)
        lifecycle.finish(run.session, rollout, final, at=run.now, reason=rollout.reason, weight=0)
        return
    reason = f"Rolling back failed after {run.ctx.attempt} attempts: {done.error}"
    lifecycle.finish(run.session, rollout, RolloutState.FAILED, at=run.now, reason=reason)
