"""Handlers run by the worker on SQLite and PostgreSQL: what commits with a completion, retries with
backoff, parking, RetryLater, a lost lease, and a graceful stop."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock, SystemClock
from quarterdeck.db import transaction
from quarterdeck.jobs import service, store
from quarterdeck.jobs.registry import JobContext, JobRegistry, PermanentFailure, RetryLater
from quarterdeck.jobs.runner import Outcome, Worker
from tests.helpers import wait_until
from tests.jobs.helpers import add_job, count_jobs, follow_up, job_row, moves, registry_of


def worker_for(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], registry: JobRegistry, clock: FrozenClock
) -> Worker:
    return Worker(sessions, writers, registry, clock=clock, worker_id="test-worker")


def test_handler_writes_commit_with_the_completion(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    seen: list[tuple[int, str, object]] = []

    def handler(ctx: JobContext) -> None:
        seen.append((ctx.attempt, ctx.kind, ctx.payload))
        follow_up(ctx)

    job_id = add_job(writers, clock, "test.work")
    worker = worker_for(sessions, writers, registry_of(work=handler), clock)

    assert worker.run_due() == 1

    assert seen == [(1, "test.work", {"n": 1})]
    row = job_row(sessions, job_id)
    assert (row.state, row.attempts, row.finished_at, row.lease_owner) == ("succeeded", 0, clock.now(), None)
    assert count_jobs(sessions, "test.follow_up") == 1
    assert moves(sessions, job_id) == [
        ("pending", "running", "claimed"),
        ("running", "succeeded", "succeeded"),
    ]
    assert worker.stats == {Outcome.SUCCEEDED: 1}


def test_a_failing_handler_is_retried_with_backoff_then_parked_with_its_error(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    attempts: list[int] = []

    def handler(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        follow_up(ctx)  # rolled back with each failed attempt
        raise ValueError(f"upstream said no (attempt {ctx.attempt})")

    job_id = add_job(writers, clock, "test.flaky")
    worker = worker_for(sessions, writers, registry_of(flaky=handler), clock)  # 3 attempts, waits 10 s, 20 s
    start = clock.now()

    assert worker.run_due() == 1
    first = job_row(sessions, job_id)
    assert (first.state, first.attempts, first.due_at) == ("pending", 1, start + timedelta(seconds=10))
    assert first.last_error is not None and first.last_error.endswith(
        "ValueError: upstream said no (attempt 1)"
    )
    clock.at = start + timedelta(seconds=9)
    assert worker.run_due() == 0  # not due yet
    clock.at = start + timedelta(seconds=10)
    assert worker.run_due() == 1
    assert job_row(sessions, job_id).due_at == start + timedelta(seconds=30)  # 10 s later + 20 s
    clock.at = start + timedelta(seconds=30)
    assert worker.run_due() == 1

    parked = job_row(sessions, job_id)
    assert (parked.state, parked.attempts, parked.finished_at) == ("failed", 3, clock.now())
    assert "Traceback" in (parked.last_error or "")
    assert (parked.last_error or "").endswith("ValueError: upstream said no (attempt 3)")
    assert attempts == [1, 2, 3]
    assert count_jobs(sessions, "test.follow_up") == 0
    assert [m[1:] for m in moves(sessions, job_id)][1::2] == [
        ("pending", "error"),
        ("pending", "error"),
        ("failed", "error"),
    ]
    assert worker.stats == {Outcome.RETRIED: 2, Outcome.FAILED: 1}


def test_the_jobs_own_max_attempts_parks_it_sooner(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    def handler(ctx: JobContext) -> None:
        raise RuntimeError("no")

    job_id = add_job(writers, clock, "test.once", max_attempts=1)

    worker_for(sessions, writers, registry_of(once=handler), clock).run_due()

    assert (job_row(sessions, job_id).state, job_row(sessions, job_id).attempts) == ("failed", 1)


def test_a_permanent_failure_is_parked_at_once(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    def handler(ctx: JobContext) -> None:
        follow_up(ctx)
        raise PermanentFailure("service 'gone' no longer exists")

    job_id = add_job(writers, clock, "test.doomed")

    worker_for(sessions, writers, registry_of(doomed=handler), clock).run_due()

    row = job_row(sessions, job_id)
    assert (row.state, row.attempts) == ("failed", 1)
    assert (row.last_error or "").endswith("PermanentFailure: service 'gone' no longer exists")
    assert moves(sessions, job_id)[-1] == ("running", "failed", "permanent_failure")
    assert count_jobs(sessions, "test.follow_up") == 0


def test_retry_later_keeps_the_handlers_writes_and_counts_no_attempt(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    def handler(ctx: JobContext) -> None:
        follow_up(ctx)
        raise RetryLater(45, "canary still baking")

    job_id = add_job(writers, clock, "test.waiting")

    outcome = worker_for(sessions, writers, registry_of(waiting=handler), clock).run_due()

    row = job_row(sessions, job_id)
    assert outcome == 1
    assert (row.state, row.attempts, row.due_at) == ("pending", 0, clock.now() + timedelta(seconds=45))
    assert count_jobs(sessions, "test.follow_up") == 1
    assert moves(sessions, job_id)[-1] == ("running", "pending", "retry_later")


def test_a_completion_after_the_lease_was_lost_rolls_back_the_handlers_writes(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    def handler(ctx: JobContext) -> None:
        # While this attempt runs, its lease expires and another worker takes the job over. (Done
        # before the handler's first statement: on SQLite that statement takes the write lock.)
        later = ctx.clock.now() + timedelta(minutes=5)
        with transaction(writers) as other:
            store.reap(other, later)
            store.claim(other, "other-worker/0", later, leases={"test.slow": 30}, limit=1)
        follow_up(ctx)

    job_id = add_job(writers, clock, "test.slow")
    worker = worker_for(sessions, writers, registry_of(slow=handler), clock)

    assert worker.run_due() == 1

    assert worker.stats == {Outcome.LOST: 1}
    assert count_jobs(sessions, "test.follow_up") == 0
    row = job_row(sessions, job_id)
    assert (row.state, row.lease_owner, row.attempts) == ("running", "other-worker/0", 1)


def test_cancelling_a_running_job_discards_what_its_handler_writes(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    def handler(ctx: JobContext) -> None:
        with transaction(writers) as operator:
            service.cancel(operator, ctx.job_id, ctx.clock.now())
        follow_up(ctx)

    job_id = add_job(writers, clock, "test.cancelled")
    worker = worker_for(sessions, writers, registry_of(cancelled=handler), clock)

    worker.run_due()

    assert worker.stats == {Outcome.LOST: 1}
    assert job_row(sessions, job_id).state == "cancelled"
    assert count_jobs(sessions, "test.follow_up") == 0


def test_a_stopping_worker_finishes_its_running_job_and_hands_back_the_rest(
    sessions: sessionmaker[Session], writers: sessionmaker[Session]
) -> None:
    clock = SystemClock()
    ran: list[int] = []
    started = threading.Event()

    def handler(ctx: JobContext) -> None:
        ran.append(ctx.job_id)
        started.set()
        worker.stop()  # a SIGTERM arriving while jobs are held

    registry = registry_of(stop=handler)
    with transaction(writers) as session:
        job_ids = [
            store.enqueue(session, "test.stop", {}, now=clock.now() - timedelta(seconds=1))[0]
            for _ in range(10)
        ]
    worker = Worker(sessions, writers, registry, clock=clock, concurrency=1, batch=5)

    stats = worker.run()

    assert started.is_set()
    assert len(ran) == 1
    assert stats == {Outcome.SUCCEEDED: 1, Outcome.RELEASED: 4}
    # The batch of five claimed: the first ran to the end, four were handed back; five never claimed.
    histories = [moves(sessions, job_id) for job_id in job_ids]
    assert [job_row(sessions, job_id).state for job_id in job_ids] == ["succeeded"] + ["pending"] * 9
    assert histories[0][-1] == ("running", "succeeded", "succeeded")
    assert all(history[-1] == ("running", "pending", "released") for history in histories[1:5])
    assert all(history == [] for history in histories[5:])


def test_a_runner_thread_outlives_a_database_failure_while_writing_an_outcome(
    sessions: sessionmaker[Session], writers: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SystemClock()
    gone = OperationalError("UPDATE jobs ...", {}, Exception("server closed the connection"))
    real_complete = store.complete
    failures = iter([gone])

    def complete(*args: Any, **kwargs: Any) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        real_complete(*args, **kwargs)

    def retry(*args: Any, **kwargs: Any) -> None:
        raise gone

    monkeypatch.setattr(store, "complete", complete)
    monkeypatch.setattr(store, "retry", retry)
    with transaction(writers) as session:
        first, _ = store.enqueue(session, "test.fine", {}, now=clock.now() - timedelta(seconds=2))
        second, _ = store.enqueue(session, "test.fine", {}, now=clock.now() - timedelta(seconds=1))
    worker = Worker(sessions, writers, registry_of(fine=lambda ctx: None), clock=clock)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: job_row(sessions, second).state == "succeeded", timeout=10, what="the second job")
    finally:
        worker.stop()
        thread.join()

    # The first job's outcome was lost with the connection: it stays leased until the lease runs out
    # and the reaper hands it to a worker again.
    assert (job_row(sessions, first).state, job_row(sessions, first).attempts) == ("running", 0)
    assert worker.stats == {Outcome.SUCCEEDED: 1}
