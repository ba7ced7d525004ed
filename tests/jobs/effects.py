"""Job handlers for tests that run real `quarterdeck worker` processes (QD_PLUGINS=tests.jobs.effects).

`test.effect` applies an effect to an external log (a table in a separate database, named by
JOBS_TEST_EFFECTS_URL) keyed by the job's idempotency key, the way a handler must talk to any outside
system; the log itself keeps each key once and counts the deliveries of each. Then it works for
JOBS_TEST_WORK_MS milliseconds, so that a SIGKILL lands between an effect and its job's completion.
`test.noop` does nothing. Both have 2-second leases, so a killed worker's jobs are taken over fast.
"""

from __future__ import annotations

import os
import time
from functools import cache

from sqlalchemy import Engine, text

from quarterdeck.db import make_engine
from quarterdeck.jobs import Backoff, JobContext, JobRegistry

EFFECTS_URL = "JOBS_TEST_EFFECTS_URL"
WORK_MS = "JOBS_TEST_WORK_MS"
LEASE_SECONDS = 2.0
EFFECTS_TABLE = (
    "CREATE TABLE effects (key VARCHAR(300) PRIMARY KEY, job_id INTEGER NOT NULL, "
    "deliveries INTEGER NOT NULL)"
)
DELIVER = text(
    "INSERT INTO effects (key, job_id, deliveries) VALUES (:key, :job_id, 1) "
    "ON CONFLICT (key) DO UPDATE SET deliveries = effects.deliveries + 1"
)


@cache
def effects_log(url: str) -> Engine:
    """One engine per worker process (a test helper; product code keeps such state in the Runtime)."""
    return make_engine(url, pool_size=4)


def apply_effect(ctx: JobContext) -> None:
    with effects_log(os.environ[EFFECTS_URL]).begin() as log:
        log.execute(DELIVER, {"key": ctx.idempotency_key, "job_id": ctx.job_id})
    time.sleep(int(os.environ.get(WORK_MS, "0")) / 1000)


def noop(ctx: JobContext) -> None:
    return None


def register_jobs(registry: JobRegistry) -> None:
    retry_fast = Backoff(max_attempts=5, base_seconds=0.2, jitter=0.0)
    registry.register("test.effect", apply_effect, lease_seconds=LEASE_SECONDS, backoff=retry_fast)
    registry.register("test.noop", noop, lease_seconds=LEASE_SECONDS, backoff=retry_fast)
