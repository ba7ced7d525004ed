"""The job state machine: every pair of states, allowed or not, as a table."""

from __future__ import annotations

import itertools

import pytest

from quarterdeck.errors import InvalidTransition
from quarterdeck.jobs.states import ALLOWED, BY_OPERATOR, JobState, can_move, require_move

P, R, S, F, C = (
    JobState.PENDING,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELLED,
)
ALLOWED_MOVES = {
    (P, R),  # a worker claims a due job
    (P, C),  # an operator cancels a job before it ran
    (R, S),  # the handler returned and its completion committed
    (R, P),  # an error with attempts left, RetryLater, an expired lease, a worker stopping
    (R, F),  # attempts ran out, or a permanent failure: parked
    (R, C),  # an operator cancels it mid-run: its completion will find the lease gone
    (F, P),  # an operator retries a parked job
    (F, C),  # an operator gives up on a parked job
    (C, P),  # an operator retries a cancelled job
}
OPERATOR_MOVES = {
    (P, C),  # cancel before it ran
    (R, C),  # cancel mid-run
    (F, P),  # retry a parked job
    (F, C),  # give up on a parked job
    (C, P),  # retry a cancelled job
}


@pytest.mark.parametrize(
    ("from_", "to"),
    sorted(itertools.product(JobState, JobState)),
    ids=lambda state: state.value,
)
def test_each_move_is_allowed_exactly_when_listed(from_: JobState, to: JobState) -> None:
    assert can_move(from_, to) is ((from_, to) in ALLOWED_MOVES)


@pytest.mark.parametrize(
    ("from_", "to"),
    sorted(itertools.product(JobState, JobState)),
    ids=lambda state: state.value,
)
def test_an_operator_may_ask_only_for_retry_and_cancel_moves(from_: JobState, to: JobState) -> None:
    assert can_move(from_, to, operator=True) is ((from_, to) in OPERATOR_MOVES)


def test_operator_moves_are_moves_the_machine_allows() -> None:
    assert all(to in ALLOWED[from_] for from_, targets in BY_OPERATOR.items() for to in targets)


def test_an_operator_cannot_put_a_running_job_back_in_the_queue() -> None:
    with pytest.raises(InvalidTransition, match="job 3 is running: it cannot become pending"):
        require_move(3, R, P, operator=True)


@pytest.mark.parametrize(
    ("from_", "to"),
    [
        (P, S),  # a job cannot succeed without running
        (P, F),  # nor fail
        (R, R),  # a running job cannot be claimed again
        (S, P),  # a succeeded job is never run again, not even by an operator
        (S, C),  # nor cancelled after the fact
        (F, R),  # a parked job must be retried (pending) before a worker takes it
        (C, R),  # likewise a cancelled one
    ],
)
def test_refused_moves_name_the_state(from_: JobState, to: JobState) -> None:
    with pytest.raises(InvalidTransition) as raised:
        require_move(7, from_, to)

    assert raised.value.code == "job.invalid_transition"
    assert raised.value.message == f"job 7 is {from_.value}: it cannot become {to.value}"
    assert raised.value.details == {"job": 7, "state": from_.value, "wanted": to.value}


def test_every_state_has_its_moves_listed() -> None:
    assert set(ALLOWED) == set(BY_OPERATOR) == set(JobState)


def test_allowed_move_raises_nothing() -> None:
    require_move(1, R, S)
