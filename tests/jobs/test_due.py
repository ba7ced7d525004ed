"""Due times against a real, idle `quarterdeck worker` process: a job due in 2 s does not start before
its time and starts within 1 s after it. PostgreSQL wakes the worker with LISTEN/NOTIFY (an idle
worker sleeps up to 30 s there, so a prompt start shows the notification arrived); SQLite polls.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import SystemClock
from quarterdeck.db import transaction
from quarterdeck.jobs import store
from tests.helpers import wait_until
from tests.jobs.helpers import job_row, worker_process


def enqueue_due_in(writers: sessionmaker[Session], seconds: float) -> int:
    """A job enqueued by another connection than the worker's, due `seconds` from now."""
    now = SystemClock().now()
    with transaction(writers) as session:
        job_id, _ = store.enqueue(session, "test.noop", {}, now=now, due_at=now + timedelta(seconds=seconds))
    return job_id


def started_late_by(sessions: sessionmaker[Session], job_id: int) -> float:
    wait_until(lambda: job_row(sessions, job_id).state == "succeeded", timeout=10, what=f"job {job_id}")
    job = job_row(sessions, job_id)
    assert job.started_at is not None
    return (job.started_at - job.due_at).total_seconds()


def test_a_job_starts_on_its_due_time_not_before(
    db_url: str, sessions: sessionmaker[Session], writers: sessionmaker[Session], tmp_path: Path
) -> None:
    with worker_process(db_url, tmp_path, "worker", concurrency=1):
        time.sleep(1.5)  # idle: on PostgreSQL listening, with nothing due for its 30 s sleep
        now_job = enqueue_due_in(writers, 0)
        now_lateness = started_late_by(sessions, now_job)
        later_job = enqueue_due_in(writers, 2)
        later_lateness = started_late_by(sessions, later_job)

    assert 0 <= now_lateness < 1.0  # woken by the NOTIFY, not by the end of its 30 s sleep
    assert 0 <= later_lateness < 1.0
