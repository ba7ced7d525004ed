"""Backoff: the wait after each failed attempt, its cap, its jitter and when it gives up."""

from __future__ import annotations

import random

import pytest

from quarterdeck.jobs.retry import NO_RETRY, Backoff

STEADY = Backoff(max_attempts=5, base_seconds=2.0, factor=2.0, max_seconds=600.0, jitter=0.0)
CAPPED = Backoff(max_attempts=1000, base_seconds=1.0, factor=10.0, max_seconds=60.0, jitter=0.0)


@pytest.mark.parametrize(
    ("backoff", "attempts", "delay"),
    [
        (STEADY, 1, 2.0),  # after the first failure: the base wait
        (STEADY, 2, 4.0),  # then doubling
        (STEADY, 3, 8.0),
        (STEADY, 4, 16.0),  # the last wait before the fifth and final attempt
        (STEADY, 5, None),  # five attempts failed: no more, the job is parked
        (STEADY, 6, None),  # past the limit (a lower job-level limit was raised): still none
        (CAPPED, 2, 10.0),  # under the cap
        (CAPPED, 3, 60.0),  # 100 s capped at 60
        (CAPPED, 999, 60.0),  # 10**998 overflows a float: still the cap, no error
        (NO_RETRY, 1, None),  # a kind that never retries parks after its one attempt
        (Backoff(base_seconds=0.0, jitter=0.0), 1, 0.0),  # retry at once
    ],
)
def test_next_delay(backoff: Backoff, attempts: int, delay: float | None) -> None:
    assert backoff.next_delay(attempts, random.Random(1)) == delay


def test_jitter_spreads_waits_within_its_fraction() -> None:
    backoff = Backoff(max_attempts=5, base_seconds=100.0, factor=1.0, jitter=0.2)
    rng = random.Random(7)

    delays = [backoff.next_delay(1, rng) for _ in range(500)]

    assert all(d is not None and 80.0 <= d <= 120.0 for d in delays)
    assert len(set(delays)) > 400  # jobs that failed together do not come back together
    assert min(d for d in delays if d is not None) < 85.0 < 115.0 < max(d for d in delays if d is not None)


def test_same_seed_gives_same_waits() -> None:
    backoff = Backoff(jitter=0.3)

    first = [backoff.next_delay(n, random.Random(3)) for n in (1, 2, 3)]
    again = [backoff.next_delay(n, random.Random(3)) for n in (1, 2, 3)]

    assert first == again


def test_a_delay_follows_a_failed_attempt() -> None:
    with pytest.raises(ValueError, match="attempts is 0"):
        STEADY.next_delay(0, random.Random())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_attempts": 0}, "at least 1 attempt"),  # a job must be tried once
        ({"base_seconds": -1.0}, "cannot be negative"),  # waits go forward in time
        ({"factor": 0.5}, "must not shrink"),  # later waits are never shorter
        ({"jitter": 1.0}, "fraction"),  # a 100 % jitter could make a wait of zero
    ],
)
def test_bad_settings_are_refused(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**arguments)  # type: ignore[arg-type]
