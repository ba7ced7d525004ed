"""The states of a rollout and of its steps, and the moves allowed between them: pure rules, no database.

A rollout is one portal deploy run through its pipeline; its steps run one at a time, in order.
"""

from __future__ import annotations

from enum import StrEnum


class RolloutState(StrEnum):
    # Waiting behind the active rollout of the same service and environment; nothing has moved yet.
    QUEUED = "queued"
    # Steps are running (or waiting for a due time: a wait, the next analysis interval).
    RUNNING = "running"
    # The current step is an approval waiting for a person's decision.
    WAITING_APPROVAL = "waiting_approval"
    # Stopped for a person: by the pause control, a failed step under `on_failure: pause`, or an
    # analysis with too many measurements without data. Traffic stays where it is.
    PAUSED = "paused"
    # Traffic is being returned to the baseline (a failed step, or the abort control).
    ROLLING_BACK = "rolling_back"
    # Every step passed: the new version takes all the traffic. Final.
    SUCCEEDED = "succeeded"
    # A step failed and the traffic went back to the baseline. Final.
    ROLLED_BACK = "rolled_back"
    # Stopped by a person; any traffic the new version had went back to the baseline. Final.
    ABORTED = "aborted"
    # The rollback itself could not be carried out: a person must look at the environment. Final.
    FAILED = "failed"

    @property
    def colour(self) -> str:
        return COLOURS[self]

    @property
    def final(self) -> bool:
        return self in FINAL


COLOURS: dict[RolloutState, str] = {
    RolloutState.QUEUED: "grey",
    RolloutState.RUNNING: "blue",
    RolloutState.WAITING_APPROVAL: "amber",
    RolloutState.PAUSED: "amber",
    RolloutState.ROLLING_BACK: "amber",
    RolloutState.SUCCEEDED: "green",
    RolloutState.ROLLED_BACK: "red",
    RolloutState.ABORTED: "grey",
    RolloutState.FAILED: "red",
}

ALLOWED: dict[RolloutState, frozenset[RolloutState]] = {
    RolloutState.QUEUED: frozenset({RolloutState.RUNNING, RolloutState.ABORTED}),
    RolloutState.RUNNING: frozenset(
        {
            RolloutState.WAITING_APPROVAL,
            RolloutState.PAUSED,
            RolloutState.ROLLING_BACK,
            RolloutState.SUCCEEDED,
        }
    ),
    RolloutState.WAITING_APPROVAL: frozenset(
        {RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.ROLLING_BACK}
    ),
    RolloutState.PAUSED: frozenset({RolloutState.RUNNING, RolloutState.ROLLING_BACK}),
    RolloutState.ROLLING_BACK: frozenset(
        {RolloutState.ROLLED_BACK, RolloutState.ABORTED, RolloutState.FAILED}
    ),
    RolloutState.SUCCEEDED: frozenset(),
    RolloutState.ROLLED_BACK: frozenset(),
    RolloutState.ABORTED: frozenset(),
    RolloutState.FAILED: frozenset(),
}
"""The one list of legal moves between states. Staying in a state that is not final (a step moving on
while the rollout runs) is always allowed; a rollout never leaves a final state."""

FINAL = frozenset(state for state, moves in ALLOWED.items() if not moves)
ACTIVE = frozenset(
    {RolloutState.RUNNING, RolloutState.WAITING_APPROVAL, RolloutState.PAUSED, RolloutState.ROLLING_BACK}
)
"""At most one rollout per service and environment is in one of these (a unique index says so)."""


def can_move(from_: RolloutState, to: RolloutState) -> bool:
    return to in ALLOWED[from_] or (to is from_ and from_ not in FINAL)


class StepState(StrEnum):
    # Not reached yet.
    PENDING = "pending"
    # Its work is being done (a driver call, a command, a webhook).
    RUNNING = "running"
    # Waiting for a due time (a wait, the next analysis interval) or a decision (an approval).
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Passed over: the rollout was promoted straight to 100 %, or stopped before reaching it.
    SKIPPED = "skipped"

    @property
    def colour(self) -> str:
        return {
            "pending": "grey",
            "running": "blue",
            "waiting": "amber",
            "succeeded": "green",
            "failed": "red",
            "skipped": "grey",
        }[self.value]


STEP_ALLOWED: dict[StepState, frozenset[StepState]] = {
    StepState.PENDING: frozenset(
        {StepState.RUNNING, StepState.WAITING, StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED}
    ),
    StepState.RUNNING: frozenset({StepState.WAITING, StepState.SUCCEEDED, StepState.FAILED}),
    StepState.WAITING: frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED}),
    StepState.SUCCEEDED: frozenset(),
    # A failed step is tried again by the retry control.
    StepState.FAILED: frozenset({StepState.PENDING}),
    StepState.SKIPPED: frozenset(),
}


def can_move_step(from_: StepState, to: StepState) -> bool:
    return to in STEP_ALLOWED[from_]


STEP_DONE = frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED})
