"""What the job tests share: reading jobs and their events back, and a registry of test handlers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.jobs import store
from quarterdeck.jobs.models import Job, JobEvent
from quarterdeck.jobs.registry import JobContext, JobRegistry
from quarterdeck.jobs.retry import Backoff
from tests.conftest import ROOT

NO_JITTER = Backoff(max_attempts=3, base_seconds=10.0, factor=2.0, jitter=0.0)


def job_row(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def moves(sessions: sessionmaker[Session], job_id: int) -> list[tuple[str, str, str]]:
    """(from, to, reason) of every event of the job, in order."""
    with sessions() as session:
        rows = session.execute(
            select(JobEvent.from_state, JobEvent.to_state, JobEvent.reason)
            .where(JobEvent.job_id == job_id)
            .order_by(JobEvent.id)
        )
        return [(a, b, c) for a, b, c in rows]


def count_jobs(sessions: sessionmaker[Session], kind: str | None = None) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Job)
        if kind is not None:
            query = query.where(Job.kind == kind)
        return int(session.execute(query).scalar_one())


def add_job(
    writers: sessionmaker[Session],
    clock: FrozenClock,
    kind: str = "test.noop",
    *,
    in_seconds: float = 0,
    key: str | None = None,
    max_attempts: int = store.DEFAULT_MAX_ATTEMPTS,
) -> int:
    """A job enqueued in its own transaction, due `in_seconds` after the clock's time."""
    with transaction(writers) as session:
        job_id, _ = store.enqueue(
            session,
            kind,
            {"n": 1},
            now=clock.now(),
            due_at=clock.now() + timedelta(seconds=in_seconds),
            idempotency_key=key,
            max_attempts=max_attempts,
        )
        return job_id


def follow_up(ctx: JobContext) -> None:
    """What a handler writes through its session: a follow-up job, keyed by the job's own key."""
    store.enqueue(
        ctx.session,
        "test.follow_up",
        {"after": ctx.job_id},
        now=ctx.clock.now(),
        idempotency_key=f"after:{ctx.idempotency_key}",
    )


def registry_of(**handlers: Callable[[JobContext], None]) -> JobRegistry:
    """A registry with each handler under test.<name>, 30 s leases, and NO_JITTER backoff."""
    registry = JobRegistry()
    for name, handler in handlers.items():
        registry.register(f"test.{name}", handler, backoff=NO_JITTER, lease_seconds=30)
    return registry


@contextmanager
def worker_process(
    database_url: str,
    folder: Path,
    name: str,
    *,
    concurrency: int = 2,
    batch: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`quarterdeck worker --json` as a real process with the test handlers (tests/jobs/effects.py),
    its output in `folder`/`name`.out and .err; started when this yields, stopped (and waited for)
    after. Only QD_DATABASE_URL and QD_PLUGINS are set: every other setting is the default."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QD_")}
    environment |= {"QD_DATABASE_URL": database_url, "QD_PLUGINS": "tests.jobs.effects", **(env or {})}
    command = [
        sys.executable,
        "-m",
        "quarterdeck",
        "worker",
        "--json",
        f"--concurrency={concurrency}",
        f"--batch={batch}",
    ]
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, env=environment, stdout=stdout, stderr=stderr, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while '"worker.started"' not in out.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start: {err.read_text()[-2000:]}")
                time.sleep(0.05)
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
