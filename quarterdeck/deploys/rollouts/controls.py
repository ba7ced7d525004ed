"""What a person may do to a running rollout: pause, resume, skip a wait, promote now, retry a failed
step, abort (and roll back), approve or reject its approval. Each is permission-checked, one guarded
move (of two racing controls one wins, the other gets a 409), and audited. The caller owns the
transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service as catalog
from quarterdeck.deploys.models import Environment
from quarterdeck.deploys.pipelines.format import ApprovalStep, Step, WaitStep
from quarterdeck.deploys.rollouts import approvals, lifecycle, store
from quarterdeck.deploys.rollouts.models import Rollout, RolloutStep
from quarterdeck.deploys.rollouts.schemas import CONTROLS, Control
from quarterdeck.deploys.rollouts.states import RolloutState, StepState
from quarterdeck.errors import InvalidTransition

STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)
MOVING = frozenset({RolloutState.RUNNING, RolloutState.WAITING_APPROVAL})


def _spec(step: RolloutStep) -> Step:
    return STEP_ADAPTER.validate_python(step.spec)


def _current(steps: list[RolloutStep], rollout: Rollout) -> RolloutStep | None:
    return steps[rollout.current_step] if rollout.current_step < len(steps) else None


def refusal(rollout: Rollout, steps: list[RolloutStep], action: Control) -> str | None:
    """Why `action` is not allowed on the rollout as it is; None when it is. Pure."""
    state = RolloutState(rollout.state)
    step = _current(steps, rollout)
    where = f"rollout {rollout.id} is {state.value.replace('_', ' ')}"
    step_words = f"step {step.position + 1} ({step.kind})" if step is not None else "no step"
    step_state = StepState(step.state) if step is not None else None
    if state.final:
        return f"{where}: it is finished"
    if action == "abort":
        return None
    if state is RolloutState.QUEUED:
        return f"{where}: only abort applies until it starts"
    if state is RolloutState.ROLLING_BACK:
        return f"{where}: wait for the rollback to finish"
    if action == "pause":
        return None if state in MOVING else f"{where}: only a running rollout can be paused"
    if action == "resume":
        if state is not RolloutState.PAUSED:
            return f"{where}: only a paused rollout can be resumed"
        if step_state is StepState.FAILED:
            return f"{step_words} failed: retry it, or abort"
        return None
    if action == "retry":
        if state is not RolloutState.PAUSED or step_state is not StepState.FAILED:
            now = step_state.value if step_state else "done"
            return f"{where} and {step_words} is {now}: only a failed step is retried"
        return None
    if action == "skip":
        if step is None or step.kind != "wait" or step_state is not StepState.WAITING:
            return f"{step_words} is not a wait that is waiting: there is nothing to skip"
        spec = _spec(step)
        if isinstance(spec, WaitStep) and not spec.wait.skippable:
            return f"{step_words} is not skippable: its pipeline does not allow skipping it"
        return None
    if action == "promote":
        if state is RolloutState.WAITING_APPROVAL or rollout.promote_requested:
            return f"{where}: it cannot be promoted now"
        if step_state is StepState.FAILED:
            return f"{step_words} failed: retry it, or abort"
        gated = [
            s
            for s in steps[rollout.current_step :]
            if s.kind == "approval" and s.state != StepState.SUCCEEDED
        ]
        if gated:
            return f"step {gated[0].position + 1} is an approval still to come: promoting would pass it by"
        return None
    if action in ("approve", "reject"):
        if state is not RolloutState.WAITING_APPROVAL or step is None or step.kind != "approval":
            return f"{where}: no approval is waiting"
        return None
    return f"unknown control {action!r}"


def allowed(rollout: Rollout, steps: list[RolloutStep]) -> list[Control]:
    return [action for action in CONTROLS if refusal(rollout, steps, action) is None]


def _pause(
    session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
) -> Rollout:
    return store.move(
        session,
        rollout,
        to=RolloutState.PAUSED,
        at=at,
        reason=f"Paused by {actor.label}{note}.",
        paused_at=at,
    )


def _resume(
    session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
) -> Rollout:
    to = RolloutState.RUNNING
    if step is not None and step.kind == "approval" and StepState(step.state) is StepState.WAITING:
        to = RolloutState.WAITING_APPROVAL
    paused_at = rollout.paused_at
    moved = store.move(session, rollout, to=to, at=at, reason="", paused_at=None)
    if step is not None and StepState(step.state) is StepState.WAITING and paused_at is not None:
        if step.due_at is not None and step.kind in ("wait", "notify"):
            step.due_at = step.due_at + (at - paused_at)
        if step.kind == "analysis":
            # Resuming gives an analysis that paused for want of data its allowance again.
            step.detail = {**step.detail, "inconclusive": 0}
            step.due_at = max(step.due_at or at, at)
        session.flush()
    lifecycle.schedule(session, moved, at=at, why="resume")
    return moved


def _skip(
    session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
) -> Rollout:
    assert step is not None
    moved = store.move(session, rollout, at=at)
    step.due_at = at
    session.flush()
    if RolloutState(moved.state) in MOVING:
        lifecycle.schedule(session, moved, at=at, why="skip")
    return moved


def _promote(
    session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
) -> Rollout:
    moved = store.move(
        session, rollout, to=RolloutState.RUNNING, at=at, promote_requested=True, paused_at=None
    )
    lifecycle.schedule(session, moved, at=at, why="promote")
    return moved


def _retry(
    session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
) -> Rollout:
    assert step is not None
    moved = store.move(session, rollout, to=RolloutState.RUNNING, at=at, reason="", paused_at=None)
    store.move_step(session, step, StepState.PENDING, at=at, detail={}, note=f"retried by {actor.label}")
    lifecycle.schedule(session, moved, at=at, why="retry")
    return moved


def _abort(
    session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
) -> Rollout:
    reason = f"Aborted by {actor.label}{note}."
    if RolloutState(rollout.state) is RolloutState.QUEUED:
        return lifecycle.finish(session, rollout, RolloutState.ABORTED, at=at, reason=reason)
    moved = store.move(
        session,
        rollout,
        to=RolloutState.ROLLING_BACK,
        at=at,
        reason=reason,
        finish_as=RolloutState.ABORTED.value,
    )
    lifecycle.schedule(session, moved, at=at, why="abort")
    return moved


def _decision(
    approve: bool,
) -> Callable[[Session, Actor, Rollout, RolloutStep | None, str, datetime], Rollout]:
    def decide(
        session: Session, actor: Actor, rollout: Rollout, step: RolloutStep | None, note: str, at: datetime
    ) -> Rollout:
        assert step is not None
        spec = _spec(step)
        request_id = step.detail.get("request")
        if not isinstance(spec, ApprovalStep) or not isinstance(request_id, int):
            raise InvalidTransition(
                f"rollout {rollout.id}: no approval is waiting", code="rollouts.not_allowed"
            )
        if approve:
            approvals.require_approver(session, actor, rollout, spec.approval)
        approvals.decide_change(
            session, actor, request_id, approve=approve, reason=note.removeprefix(": ") or None, at=at
        )
        return store.get(session, rollout.id, fresh=True)

    return decide


ACTIONS: dict[str, Callable[[Session, Actor, Rollout, RolloutStep | None, str, datetime], Rollout]] = {
    "pause": _pause,
    "resume": _resume,
    "skip": _skip,
    "promote": _promote,
    "retry": _retry,
    "abort": _abort,
    "approve": _decision(True),
    "reject": _decision(False),
}


def control(
    session: Session, actor: Actor, rollout_id: int, action: Control, *, reason: str | None, at: datetime
) -> Rollout:
    """Carry out one control on a rollout, as the deployer's team (or an admin) may. A control the
    rollout's state does not allow is refused (409) saying why."""
    rollout = store.get(session, rollout_id, fresh=True)
    env = session.get_one(Environment, rollout.environment_id)
    ref = catalog.service_ref(session, rollout.service_slug)
    access.require(actor, "deploy.start", ref.resource(environment=env.slug, production=env.production))
    steps = store.steps_of(session, rollout.id)
    why = refusal(rollout, steps, action)
    if why is not None:
        raise InvalidTransition(
            why, code="rollouts.not_allowed", details={"action": action, "state": rollout.state}
        )
    before: dict[str, Any] = {"state": rollout.state, "step": rollout.current_step, "weight": rollout.weight}
    note = f": {reason}" if reason else ""
    moved = ACTIONS[action](session, actor, rollout, _current(steps, rollout), note, at)
    store.add_event(
        session, rollout.id, "control", {"action": action, "by": actor.label, "reason": reason or ""}, at=at
    )
    after = {"state": moved.state, "step": moved.current_step, "weight": moved.weight}
    access.record(
        session,
        actor,
        f"rollout.{action}",
        target=("rollout", str(rollout.id)),
        at=at,
        before=before,
        after=after,
        note=reason,
    )
    return moved
