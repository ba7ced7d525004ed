"""The deploy state machine as a pure rule: every move from every status, no database, no HTTP."""

from __future__ import annotations

import itertools

import pytest

from quarterdeck.deploys.states import ALLOWED, FINISHED, DeployStatus, can_move

RUNNING, SUCCEEDED, FAILED, ROLLED_BACK = (
    DeployStatus.RUNNING,
    DeployStatus.SUCCEEDED,
    DeployStatus.FAILED,
    DeployStatus.ROLLED_BACK,
)

MOVES: list[tuple[DeployStatus | None, DeployStatus, bool]] = [
    # a deploy seen for the first time may be recorded in any status: CI often reports only the end
    (None, RUNNING, True),
    (None, SUCCEEDED, True),
    (None, FAILED, True),
    (None, ROLLED_BACK, True),
    # a running deploy is not moved to where it is
    (RUNNING, RUNNING, False),
    # a running deploy finishes well ...
    (RUNNING, SUCCEEDED, True),
    # ... or badly ...
    (RUNNING, FAILED, True),
    # ... or is undone before it finishes
    (RUNNING, ROLLED_BACK, True),
    # a finished deploy does not start running again
    (SUCCEEDED, RUNNING, False),
    (SUCCEEDED, SUCCEEDED, False),
    # a success is not turned into a failure afterwards
    (SUCCEEDED, FAILED, False),
    # but a deploy that went out well may be undone later
    (SUCCEEDED, ROLLED_BACK, True),
    # a failure is final: not restarted, not declared a success, not rolled back
    (FAILED, RUNNING, False),
    (FAILED, SUCCEEDED, False),
    (FAILED, FAILED, False),
    (FAILED, ROLLED_BACK, False),
    # a rollback is final too
    (ROLLED_BACK, RUNNING, False),
    (ROLLED_BACK, SUCCEEDED, False),
    (ROLLED_BACK, FAILED, False),
    (ROLLED_BACK, ROLLED_BACK, False),
]


@pytest.mark.parametrize(("from_", "to", "allowed"), MOVES)
def test_can_move(from_: DeployStatus | None, to: DeployStatus, allowed: bool) -> None:
    assert can_move(from_, to) is allowed


def test_the_table_names_every_move_once() -> None:
    every = {(from_, to) for from_, to in itertools.product([None, *DeployStatus], DeployStatus)}
    assert {(from_, to) for from_, to, _ in MOVES} == every
    assert len(MOVES) == len(every)


def test_allowed_moves_never_lead_back_to_a_status_already_left() -> None:
    """No cycle: a status, once left, is never entered again, so a deploy's status names its history."""
    for start in DeployStatus:
        reachable, frontier = set(), set(ALLOWED[start])
        while frontier:
            reachable |= frontier
            frontier = {nxt for status in frontier for nxt in ALLOWED[status]} - reachable
        assert start not in reachable, start


def test_finished_statuses_are_those_a_deploy_rests_in_or_is_only_undone_from() -> None:
    assert {status for status in DeployStatus if ALLOWED[status] <= {ROLLED_BACK}} == FINISHED
    assert RUNNING not in FINISHED
