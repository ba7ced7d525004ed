"""The operator's view of the queue on SQLite and PostgreSQL: listing, events, queue figures, and the
Prometheus collector that reads them at scrape time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock
from quarterdeck.db import make_engine, make_sessionmaker, transaction
from quarterdeck.jobs import figures, service, store
from quarterdeck.jobs.metrics import JobsCollector
from quarterdeck.jobs.schemas import KindStats, QueueStats
from quarterdeck.jobs.states import JobState
from tests.jobs.helpers import add_job


def claim(writers: sessionmaker[Session], clock: FrozenClock, kind: str, after: float = 0) -> int:
    with transaction(writers) as session:
        at = clock.now() + timedelta(seconds=after)
        [job] = store.claim(session, "w", at, leases={kind: 30}, limit=1)
        return job.id


@pytest.fixture
def busy_queue(writers: sessionmaker[Session], clock: FrozenClock) -> dict[str, int]:
    """sync: two due (30 s and 10 s late), one not yet due, one running; mail: one parked, one
    that lost its lease and waits again."""
    jobs = {
        "late": add_job(writers, clock, "sync", in_seconds=-30),
        "less_late": add_job(writers, clock, "sync", in_seconds=-10),
        "future": add_job(writers, clock, "sync", in_seconds=60),
        "parked": add_job(writers, clock, "mail", in_seconds=-100),
        "reaped": add_job(writers, clock, "mail", in_seconds=-50),
    }
    with transaction(writers) as session:
        store.claim(session, "w", clock.now(), leases={"mail": 30}, limit=2)
        store.park(session, jobs["parked"], "w", clock.now(), error="boom", permanent=True)
        store.reap(session, clock.now() + timedelta(seconds=31))
    jobs["running"] = add_job(writers, clock, "sync", in_seconds=-60)
    claim(writers, clock, "sync")
    return jobs


def test_queue_stats_count_each_kind_and_state(
    sessions: sessionmaker[Session], clock: FrozenClock, busy_queue: dict[str, int]
) -> None:
    with sessions() as session:
        stats = service.queue_stats(session, clock.now())

    assert stats == QueueStats(
        at=clock.now(),
        kinds=[
            KindStats(
                kind="mail",
                depth={JobState.FAILED: 1, JobState.PENDING: 1},
                oldest_due_lag_seconds=50.0,
                failures=2,  # the permanent failure and the expired lease
            ),
            KindStats(
                kind="sync",
                depth={JobState.PENDING: 3, JobState.RUNNING: 1},
                oldest_due_lag_seconds=30.0,
                failures=0,
            ),
        ],
        oldest_due_lag_seconds=50.0,
    )


def test_list_jobs_filters_by_state_and_kind(
    sessions: sessionmaker[Session], busy_queue: dict[str, int]
) -> None:
    with sessions() as session:
        pending_sync = service.list_jobs(session, state=JobState.PENDING, kind="sync")
        failed = service.list_jobs(session, state=JobState.FAILED)
        two = service.list_jobs(session, limit=2)

    assert [job.id for job in pending_sync] == [
        busy_queue["future"],
        busy_queue["less_late"],
        busy_queue["late"],
    ]
    assert [(job.id, job.last_error) for job in failed] == [(busy_queue["parked"], "boom")]
    assert [job.id for job in two] == [busy_queue["future"], busy_queue["less_late"]]


def test_job_events_tell_its_story(sessions: sessionmaker[Session], busy_queue: dict[str, int]) -> None:
    with sessions() as session:
        events = service.job_events(session, busy_queue["reaped"])

    assert [(e.from_state, e.to_state, e.reason) for e in events] == [
        (JobState.PENDING, JobState.RUNNING, "claimed"),
        (JobState.RUNNING, JobState.PENDING, "lease_expired"),
    ]
    assert events[1].note == "lease expired: w stopped renewing it"


def test_start_lag_is_measured_from_due_to_started(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    add_job(writers, clock, "sync")
    claim(writers, clock, "sync", after=2.5)
    add_job(writers, clock, "sync", in_seconds=3)
    claim(writers, clock, "sync", after=3.5)

    with sessions() as session:
        lag = figures.start_lag(session, clock.now())
        none_since = figures.start_lag(session, clock.now() + timedelta(seconds=4))

    assert list(lag) == ["sync"]
    mean, largest, count = lag["sync"]
    assert mean == pytest.approx(1.5, abs=0.01)
    assert largest == pytest.approx(2.5, abs=0.01)
    assert count == 2
    assert none_since == {}


def test_the_collector_exports_the_queue_at_scrape_time(
    sessions: sessionmaker[Session], clock: FrozenClock, busy_queue: dict[str, int]
) -> None:
    registry = CollectorRegistry()
    registry.register(JobsCollector(sessions, clock=clock))

    lines = set(generate_latest(registry).decode().splitlines())

    assert {
        'quarterdeck_jobs{kind="sync",state="pending"} 3.0',
        'quarterdeck_jobs{kind="sync",state="running"} 1.0',
        'quarterdeck_jobs{kind="sync",state="failed"} 0.0',
        'quarterdeck_jobs{kind="mail",state="failed"} 1.0',
        'quarterdeck_jobs_oldest_due_lag_seconds{kind="mail"} 50.0',
        'quarterdeck_jobs_oldest_due_lag_seconds{kind="sync"} 30.0',
        'quarterdeck_jobs_failures_total{kind="mail"} 2.0',
        'quarterdeck_jobs_failures_total{kind="sync"} 0.0',
        'quarterdeck_jobs_start_lag_seconds{kind="sync",stat="max"} 60.0',
        "quarterdeck_jobs_up 1.0",
    } <= lines
    assert not any(line.startswith("quarterdeck_jobs{") and 'state="succeeded"' in line for line in lines)


def test_the_collector_reports_a_database_it_cannot_read() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_timeout=1)
    registry = CollectorRegistry()
    registry.register(JobsCollector(make_sessionmaker(engine)))

    text = generate_latest(registry).decode()

    assert "quarterdeck_jobs_up 0.0" in text
    assert 'quarterdeck_jobs{kind="' not in text
    engine.dispose()
