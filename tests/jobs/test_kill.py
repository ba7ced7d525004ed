"""Workers killed with SIGKILL mid-run lose no job and apply no effect twice.

2,000 jobs apply an effect to an external log (a table in a separate database) keyed by their
idempotency key, then work 10 ms each. PostgreSQL: three `quarterdeck worker` processes; one is
killed once a third of the jobs is done, another at two thirds. SQLite: one worker process, killed
at a third and started again. Every job must end succeeded, completed exactly once, the log must
hold every key once, and any effect delivered twice must come from an attempt that was killed.
Workers claim 4 jobs at a time, so a kill also strands jobs claimed but not started.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import SystemClock
from quarterdeck.db import make_engine, transaction
from quarterdeck.jobs import store
from quarterdeck.jobs.models import Job, JobEvent
from tests.helpers import wait_until
from tests.jobs.effects import EFFECTS_TABLE, EFFECTS_URL, WORK_MS
from tests.jobs.helpers import worker_process

JOBS = 2000
TIMEOUT = 60.0


@pytest.fixture
def effects(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """The external log: a database of its own beside the test's."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'effects.db'}"
    else:
        server, name = db_url.rsplit("/", 1)[0], f"effects_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{server}/{name}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(EFFECTS_TABLE))
    yield url, engine
    engine.dispose()


def enqueue_all(writers: sessionmaker[Session]) -> None:
    now = SystemClock().now()
    with transaction(writers) as session:
        for n in range(JOBS):
            store.enqueue(session, "test.effect", {"n": n}, now=now, idempotency_key=f"effect-{n}")


def succeeded(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Job).where(Job.state == "succeeded")
        return int(session.execute(query).scalar_one())


def held_by(sessions: sessionmaker[Session], worker: subprocess.Popen[bytes]) -> int:
    """Running jobs whose lease the worker process holds (its owner names hostname:pid:...)."""
    with sessions() as session:
        query = select(func.count()).where(Job.state == "running", Job.lease_owner.like(f"%:{worker.pid}:%"))
        return int(session.execute(query).scalar_one())


def kill_when_done(sessions: sessionmaker[Session], worker: subprocess.Popen[bytes], done: int) -> None:
    """SIGKILL the worker once `done` jobs are done, at a moment it holds some (it claims 4 at a time,
    so it still holds them an instant later)."""
    wait_until(
        lambda: succeeded(sessions) >= done and held_by(sessions, worker) > 0,
        timeout=TIMEOUT,
        what=f"{done} jobs done, and the worker holding some",
    )
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert succeeded(sessions) < JOBS, "the kill came too late to land mid-run"


def check_everything_done_once(
    sessions: sessionmaker[Session], log: Engine, killed: list[subprocess.Popen[bytes]]
) -> None:
    with sessions() as session:
        states = {
            state: count
            for state, count in session.execute(select(Job.state, func.count()).group_by(Job.state))
        }
        completions = {
            job_id: count
            for job_id, count in session.execute(
                select(JobEvent.job_id, func.count())
                .where(JobEvent.to_state == "succeeded")
                .group_by(JobEvent.job_id)
            )
        }
        taken_over = {
            key: count
            for key, count in session.execute(
                select(Job.idempotency_key, func.count())
                .join(JobEvent, JobEvent.job_id == Job.id)
                .where(JobEvent.reason == "lease_expired")
                .group_by(Job.idempotency_key)
            )
        }
        notes = [
            note or ""
            for note in session.scalars(select(JobEvent.note).where(JobEvent.reason == "lease_expired"))
        ]
    with log.connect() as conn:
        deliveries = {key: count for key, count in conn.execute(text("SELECT key, deliveries FROM effects"))}

    assert states == {"succeeded": JOBS}
    assert len(completions) == JOBS and set(completions.values()) == {1}  # each completed exactly once
    assert set(deliveries) == {f"effect-{n}" for n in range(JOBS)}  # no effect missing, none unknown
    repeated = {key: count for key, count in deliveries.items() if count > 1}
    # A second delivery only ever comes from an attempt whose worker died after its effect.
    assert all(count <= 1 + taken_over.get(key, 0) for key, count in repeated.items()), repeated
    for worker in killed:  # each kill landed while its worker held jobs, and they were taken over
        assert any(f":{worker.pid}:" in note for note in notes), (worker.pid, notes[:5])


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_three_postgresql_workers_two_killed(
    db_url: str,
    sessions: sessionmaker[Session],
    writers: sessionmaker[Session],
    effects: tuple[str, Engine],
    tmp_path: Path,
) -> None:
    env = {EFFECTS_URL: effects[0], WORK_MS: "10"}
    with ExitStack() as stack:
        workers = [
            stack.enter_context(worker_process(db_url, tmp_path, f"worker-{n}", batch=4, env=env))
            for n in range(3)
        ]
        enqueue_all(writers)
        kill_when_done(sessions, workers[0], JOBS // 3)
        kill_when_done(sessions, workers[1], 2 * JOBS // 3)
        wait_until(lambda: succeeded(sessions) == JOBS, timeout=TIMEOUT, what="every job done")
        workers[2].send_signal(signal.SIGTERM)
        assert workers[2].wait(timeout=30) == 0

    check_everything_done_once(sessions, effects[1], workers[:2])
    assert '"worker.stopped"' in (tmp_path / "worker-2.out").read_text()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_one_sqlite_worker_killed_and_started_again(
    db_url: str,
    sessions: sessionmaker[Session],
    writers: sessionmaker[Session],
    effects: tuple[str, Engine],
    tmp_path: Path,
) -> None:
    env = {EFFECTS_URL: effects[0], WORK_MS: "10"}
    with worker_process(db_url, tmp_path, "first", batch=4, env=env) as first:
        enqueue_all(writers)
        kill_when_done(sessions, first, JOBS // 3)
    with worker_process(db_url, tmp_path, "again", env=env):
        wait_until(lambda: succeeded(sessions) == JOBS, timeout=TIMEOUT, what="every job done")

    check_everything_done_once(sessions, effects[1], [first])
