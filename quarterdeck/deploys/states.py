"""The statuses of a deploy and the moves allowed between them: pure rules, no database."""

from __future__ import annotations

from enum import StrEnum


class DeployStatus(StrEnum):
    # Rolling out now: reported as started and not finished yet.
    RUNNING = "running"
    # Finished well: the newest succeeded deploy of a service to an environment is what runs there.
    SUCCEEDED = "succeeded"
    # Finished badly; it never became live. Final.
    FAILED = "failed"
    # Undone: before it finished, or afterwards (it then stops being live). Final.
    ROLLED_BACK = "rolled_back"

    @property
    def colour(self) -> str:
        return {"running": "blue", "succeeded": "green", "failed": "red", "rolled_back": "amber"}[self.value]


ALLOWED: dict[DeployStatus, frozenset[DeployStatus]] = {
    DeployStatus.RUNNING: frozenset({DeployStatus.SUCCEEDED, DeployStatus.FAILED, DeployStatus.ROLLED_BACK}),
    # A deploy that went out well may still be undone later.
    DeployStatus.SUCCEEDED: frozenset({DeployStatus.ROLLED_BACK}),
    DeployStatus.FAILED: frozenset(),
    DeployStatus.ROLLED_BACK: frozenset(),
}
"""A deploy moves on, never back: a finished deploy does not start running again."""

FINISHED = frozenset({DeployStatus.SUCCEEDED, DeployStatus.FAILED, DeployStatus.ROLLED_BACK})
"""Statuses that carry a finish time."""


def can_move(from_: DeployStatus | None, to: DeployStatus) -> bool:
    """Whether a deploy in `from_` may become `to`; None is a deploy not recorded yet, which may start
    in any status (CI often reports a deploy only once it has finished)."""
    if from_ is None:
        return True
    return to in ALLOWED[from_]
