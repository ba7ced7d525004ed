"""The states of a job and the moves allowed between them: pure rules, no database."""

from __future__ import annotations

from enum import StrEnum

from quarterdeck.errors import InvalidTransition


class JobState(StrEnum):
    # Waiting for its due time, or due and waiting for a worker to claim it.
    PENDING = "pending"
    # Claimed by a worker that holds its lease; the lease is extended by heartbeats while it runs.
    RUNNING = "running"
    # The handler returned and its writes committed with this state: done, never run again.
    SUCCEEDED = "succeeded"
    # Parked: its attempts ran out, or the handler said the failure is permanent. Kept with its
    # last error until an operator retries or cancels it.
    FAILED = "failed"
    # Stopped by an operator; it will not run unless retried.
    CANCELLED = "cancelled"


ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            # Back to the queue: an error with attempts left, RetryLater, an expired lease, a worker stopping.
            JobState.PENDING,
            JobState.FAILED,
            # An operator cancels it mid-run: the handler's completion then finds its lease gone.
            JobState.CANCELLED,
        }
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.PENDING, JobState.CANCELLED}),
    JobState.CANCELLED: frozenset({JobState.PENDING}),
}

BY_OPERATOR: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset({JobState.PENDING, JobState.CANCELLED}),
    JobState.CANCELLED: frozenset({JobState.PENDING}),
}
"""The moves an operator may ask for (retry, cancel): a subset of ALLOWED. Putting a running job back
to pending is the worker's move alone: it would run the job twice at once."""


def operator_moves(state: JobState) -> frozenset[JobState]:
    """Where an operator may send a job in `state`: what pages offer as buttons."""
    return BY_OPERATOR[state]


def can_move(from_: JobState, to: JobState, *, operator: bool = False) -> bool:
    return to in (BY_OPERATOR if operator else ALLOWED)[from_]


def require_move(job_id: int, from_: JobState, to: JobState, *, operator: bool = False) -> None:
    """Raise the clear error an operator sees, e.g. when retrying a job that is running."""
    if not can_move(from_, to, operator=operator):
        raise InvalidTransition(
            f"job {job_id} is {from_.value}: it cannot become {to.value}",
            code="job.invalid_transition",
            details={"job": job_id, "state": from_.value, "wanted": to.value},
        )
