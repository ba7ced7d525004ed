"""The job statements on SQLite and PostgreSQL: enqueue, claim with a lease, races between claimers,
takeover of an expired lease, and the operator's guarded retry and cancel."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.errors import Conflict, InvalidTransition, LeaseLost, NotFound
from quarterdeck.jobs import service, store
from quarterdeck.jobs.states import JobState
from tests.jobs.helpers import add_job, count_jobs, job_row, moves

LEASES = {"test.noop": 30.0}


def claim(
    writers: sessionmaker[Session], owner: str, clock: FrozenClock, *, limit: int = 10, after: float = 0
) -> list[store.Claimed]:
    with transaction(writers) as session:
        return store.claim(session, owner, clock.now() + timedelta(seconds=after), leases=LEASES, limit=limit)


def test_enqueue_is_idempotent_on_the_key(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(writers) as session:
        first = store.enqueue(session, "test.noop", {"a": 1}, now=clock.now(), idempotency_key="k-1")
    with transaction(writers) as session:
        again = store.enqueue(session, "test.noop", {"a": 2}, now=clock.now(), idempotency_key="k-1")

    assert first == (first[0], True)
    assert again == (first[0], False)
    assert count_jobs(writers) == 1
    assert job_row(writers, first[0]).payload == {"a": 1}


def test_a_key_names_one_kind(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    add_job(writers, clock, key="shared")

    with pytest.raises(Conflict) as raised, transaction(writers) as session:
        store.enqueue(session, "test.other", {}, now=clock.now(), idempotency_key="shared")

    assert raised.value.code == "job.key_taken"
    assert count_jobs(writers) == 1


def test_without_a_key_each_enqueue_is_a_new_job(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    one, two = add_job(writers, clock), add_job(writers, clock)

    keys = {job_row(writers, one).idempotency_key, job_row(writers, two).idempotency_key}
    assert one != two
    assert len(keys) == 2
    assert all(key.startswith("test.noop:") for key in keys)


def test_a_job_is_not_claimed_before_it_is_due(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    job_id = add_job(writers, clock, in_seconds=10)

    assert claim(writers, "w1", clock) == []
    assert claim(writers, "w1", clock, after=9.999) == []
    assert [job.id for job in claim(writers, "w1", clock, after=10)] == [job_id]


def test_claim_sets_the_lease(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    job_id = add_job(writers, clock, key="lease-me")

    [claimed] = claim(writers, "host:1:abc/0", clock)

    assert (claimed.id, claimed.kind, claimed.payload, claimed.attempts) == (job_id, "test.noop", {"n": 1}, 0)
    assert (claimed.idempotency_key, claimed.lease_owner) == ("lease-me", "host:1:abc/0")
    row = job_row(writers, job_id)
    assert (row.state, row.lease_owner) == ("running", "host:1:abc/0")
    assert row.lease_expires_at == clock.now() + timedelta(seconds=30)
    assert row.heartbeat_at == row.started_at == clock.now()
    assert row.version == 2
    assert moves(writers, job_id) == [("pending", "running", "claimed")]


def test_claim_takes_due_jobs_in_due_order_up_to_its_limit(
    writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    late = add_job(writers, clock, in_seconds=-1)
    early = add_job(writers, clock, in_seconds=-5)
    add_job(writers, clock, "test.unknown_kind", in_seconds=-9)
    last = add_job(writers, clock)

    assert [job.id for job in claim(writers, "w", clock, limit=2)] == [early, late]
    assert [job.id for job in claim(writers, "w", clock, limit=2)] == [last]
    assert claim(writers, "w", clock) == []  # the unknown kind waits for a worker that knows it


def test_claimers_racing_never_get_the_same_job(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    job_ids = {add_job(writers, clock) for _ in range(120)}
    got: dict[str, list[int]] = {}
    start = threading.Barrier(6)

    def claimer(owner: str) -> None:
        start.wait()
        mine = got.setdefault(owner, [])
        while batch := claim(writers, owner, clock, limit=3):
            mine.extend(job.id for job in batch)
            time.sleep(0.002)  # a worker runs its jobs between claims: the others get their turn

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [job_id for ids in got.values() for job_id in ids]
    assert sorted(everything) == sorted(job_ids)  # each job exactly once, none left behind
    assert sum(1 for ids in got.values() if ids) >= 2  # the race was real: several claimers won jobs


def test_skip_locked_lets_a_second_claimer_pass_an_uncommitted_claim(
    writers: sessionmaker[Session], clock: FrozenClock, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises claims with BEGIN IMMEDIATE")
    first, second = add_job(writers, clock, in_seconds=-2), add_job(writers, clock, in_seconds=-1)
    with writers() as holding, holding.begin():
        held = store.claim(holding, "a", clock.now(), leases=LEASES, limit=1)

        started = time.monotonic()
        passed = claim(writers, "b", clock, limit=10)
        waited = time.monotonic() - started

        assert [job.id for job in held] == [first]
        assert [job.id for job in passed] == [second]  # not blocked on the locked row, and not given it
        assert waited < 1.0
        holding.rollback()
    assert [job.id for job in claim(writers, "c", clock)] == [first]  # released by the rollback


def test_heartbeat_extends_only_the_owners_leases(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    mine, theirs = add_job(writers, clock), add_job(writers, clock)
    claim(writers, "me", clock, limit=1)
    claim(writers, "them", clock, limit=1)

    with transaction(writers) as session:
        extended = store.heartbeat(session, ["me"], clock.now() + timedelta(seconds=20), leases=LEASES)

    assert extended == 1
    assert job_row(writers, mine).lease_expires_at == clock.now() + timedelta(seconds=50)
    assert job_row(writers, mine).heartbeat_at == clock.now() + timedelta(seconds=20)
    assert job_row(writers, theirs).lease_expires_at == clock.now() + timedelta(seconds=30)


def test_an_expired_lease_is_taken_over_by_another_worker(
    writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    job_id = add_job(writers, clock)
    claim(writers, "dead", clock)

    def reap(after: float) -> list[tuple[int, JobState]]:
        with transaction(writers) as session:
            return store.reap(session, clock.now() + timedelta(seconds=after))

    assert reap(29.9) == []  # the lease still runs
    assert reap(31) == [(job_id, JobState.PENDING)]
    row = job_row(writers, job_id)
    assert (row.state, row.attempts, row.lease_owner) == ("pending", 1, None)
    assert row.last_error == "lease expired: dead stopped renewing it"

    [again] = claim(writers, "alive", clock, after=31)

    assert (again.id, again.attempts, again.lease_owner) == (job_id, 1, "alive")
    with pytest.raises(LeaseLost), transaction(writers) as session:
        store.complete(session, job_id, "dead", clock.now())  # the dead worker's late completion
    assert moves(writers, job_id) == [
        ("pending", "running", "claimed"),
        ("running", "pending", "lease_expired"),
        ("pending", "running", "claimed"),
    ]


def test_an_expired_lease_on_the_last_attempt_parks_the_job(
    writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    job_id = add_job(writers, clock, max_attempts=1)
    claim(writers, "dead", clock)

    with transaction(writers) as session:
        moved = store.reap(session, clock.now() + timedelta(seconds=60))

    assert moved == [(job_id, JobState.FAILED)]
    row = job_row(writers, job_id)
    assert (row.state, row.attempts, row.finished_at) == ("failed", 1, clock.now() + timedelta(seconds=60))


def test_retrying_a_running_job_is_refused(writers: sessionmaker[Session], clock: FrozenClock) -> None:
    job_id = add_job(writers, clock)
    claim(writers, "w", clock)

    with pytest.raises(InvalidTransition) as raised, transaction(writers) as session:
        service.retry(session, job_id, clock.now())

    assert raised.value.message == f"job {job_id} is running: it cannot become pending"
    assert job_row(writers, job_id).state == "running"


@pytest.mark.parametrize(
    ("setup", "action", "outcome"),
    [
        ("pending", "cancel", "cancelled"),  # stopped before it ran
        ("running", "cancel", "cancelled"),  # taken from its worker
        ("failed", "retry", "pending"),  # a parked job runs again
        ("failed", "cancel", "cancelled"),  # a parked job given up on
        ("cancelled", "retry", "pending"),  # a cancelled job runs after all
        ("pending", "retry", InvalidTransition),  # already waiting to run
        ("succeeded", "retry", InvalidTransition),  # done is done
        ("succeeded", "cancel", InvalidTransition),  # too late to cancel
        ("cancelled", "cancel", InvalidTransition),  # nothing left to stop
    ],
)
def test_operator_moves_are_guarded(
    writers: sessionmaker[Session],
    clock: FrozenClock,
    setup: str,
    action: str,
    outcome: str | type[Exception],
) -> None:
    job_id = add_job(writers, clock, max_attempts=1)
    if setup != "pending":
        claim(writers, "w", clock)
    with transaction(writers) as session:
        if setup == "succeeded":
            store.complete(session, job_id, "w", clock.now())
        elif setup == "failed":
            store.park(session, job_id, "w", clock.now(), error="boom", permanent=False)
        elif setup == "cancelled":
            store.cancel(session, job_id, clock.now())
    before = job_row(writers, job_id)
    later = clock.now() + timedelta(minutes=5)
    move = service.retry if action == "retry" else service.cancel

    if isinstance(outcome, type):
        with pytest.raises(outcome), transaction(writers) as session:
            move(session, job_id, later)
        assert job_row(writers, job_id).version == before.version  # nothing changed
        return
    with transaction(writers) as session:
        job = move(session, job_id, later)

    assert job.state.value == outcome
    assert job.lease_owner is None
    assert moves(writers, job_id)[-1] == (setup, outcome, "retried" if action == "retry" else "cancelled")
    if action == "retry":
        assert (job.due_at, job.attempts, job.finished_at) == (later, 0, None)
    else:
        assert job.finished_at == later


def test_operator_moves_of_a_missing_job_are_not_found(
    writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    with pytest.raises(NotFound), transaction(writers) as session:
        service.cancel(session, 404, clock.now())
