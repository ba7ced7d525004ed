"""The worker: threads that claim due jobs, run their handlers and write each outcome, a maintenance
thread that renews leases and reaps expired ones, and (on PostgreSQL) a listener for new work.

Each job runs as: claim (its own short transaction, committed, so the lease is visible to everyone)
-> handler in a new writer transaction -> completion in that same transaction. A failure is written
in a transaction of its own after the handler's has rolled back.

On SQLite run one worker process (threads inside it are fine): SQLite has one writer at a time, and
idle threads poll every `poll_seconds`. On PostgreSQL run as many processes as you like; idle threads
sleep until a NOTIFY, the next known due time, or `idle_seconds`, whichever comes first.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import Clock
from quarterdeck.db import transaction
from quarterdeck.errors import LeaseLost
from quarterdeck.jobs import figures, store
from quarterdeck.jobs.models import EventReason
from quarterdeck.jobs.registry import JobContext, JobKind, JobRegistry, PermanentFailure, RetryLater
from quarterdeck.jobs.wakeups import Listener, Wakeups

log = logging.getLogger("quarterdeck.jobs")
MAX_ERROR_CHARS = 8000
MIN_IDLE_SECONDS = 0.01


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRIED = "retried"
    POSTPONED = "postponed"
    FAILED = "failed"
    LOST = "lost"
    """The lease had passed to another worker (or the job was cancelled): nothing was kept."""
    RELEASED = "released"


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc)).strip()
    return text if len(text) <= MAX_ERROR_CHARS else "...\n" + text[-MAX_ERROR_CHARS:]


class Worker:
    """Runs the registry's handlers against the jobs table until stopped.

    `sessions` read (next due time); `writers` write (claims, handlers, outcomes): on SQLite their
    transactions take the write lock at their first statement.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        writers: sessionmaker[Session],
        registry: JobRegistry,
        *,
        clock: Clock,
        concurrency: int = 1,
        batch: int = 1,
        poll_seconds: float = 0.2,
        idle_seconds: float = 30.0,
        reap_seconds: float | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency < 1 or batch < 1:
            raise ValueError("a worker needs concurrency >= 1 and batch >= 1")
        self.sessions = sessions
        self.writers = writers
        self.registry = registry
        self.clock = clock
        self.concurrency = concurrency
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.idle_seconds = idle_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.rng = rng or random.Random()
        self.stats: Counter[Outcome] = Counter()
        self.dialect = sessions.kw["bind"].dialect.name
        shortest = min(registry.leases().values(), default=60.0)
        self.heartbeat_seconds = shortest / 3
        self.reap_seconds = reap_seconds if reap_seconds is not None else min(5.0, max(0.2, shortest / 2))
        self.wakeups = Wakeups()
        self._stopping = threading.Event()
        self._stats_lock = threading.Lock()
        self._listener: Listener | None = None
        self._holding = [0] * concurrency
        """Jobs each runner thread holds (claimed, running included): whose leases to renew."""

    # -- running -----------------------------------------------------------------------------

    def run(self) -> Counter[Outcome]:
        """Work until stop() is called (from a signal handler, say); then let each thread finish the job
        it is running, hand back the ones it had claimed but not started, and return the counts."""
        self.registry.freeze()
        if self.dialect == "postgresql":
            self._listener = Listener(self.sessions.kw["bind"].url, self.wakeups)
            self._listener.start()
        runners = [
            threading.Thread(target=self._runner, args=(n,), name=f"jobs-runner-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        done = threading.Event()
        maintenance = threading.Thread(
            target=self._maintain, args=(done,), name="jobs-maintenance", daemon=True
        )
        maintenance.start()
        for thread in runners:
            thread.start()
        try:
            while not self._stopping.wait(1.0):
                pass
        finally:
            self.stop()
            for thread in runners:
                thread.join()
            done.set()
            maintenance.join()
            if self._listener is not None:
                self._listener.stop()
        return self.stats

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler): running jobs finish first."""
        self._stopping.set()
        self.wakeups.wake()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def owner(self, runner: int) -> str:
        """The lease owner a runner thread claims as. One per thread: a thread claims again only once
        its claimed jobs are done, so a stale claim of its own can never look current."""
        return f"{self.worker_id}/{runner}"

    def run_due(self, *, limit: int = 1000) -> int:
        """Run the jobs due now in the calling thread, one by one, until none is due (or `limit` ran);
        how many ran. No heartbeats: for tests and one-off commands, with short handlers."""
        self.registry.freeze()
        ran = 0
        while ran < limit:
            claimed = self._claim(self.owner(-1))
            if not claimed:
                break
            for job in claimed:
                self.execute(job)
                ran += 1
        return ran

    # -- one runner thread -------------------------------------------------------------------

    def _runner(self, index: int) -> None:
        """Claim, run, repeat. Once a claim comes back empty the thread is idle: it sleeps until a job is
        due (reading, not claiming: on SQLite a claim takes the write lock) or it is woken."""
        owner = self.owner(index)
        held: deque[store.Claimed] = deque()
        idle = False
        try:
            while not self._stopping.is_set():
                self._holding[index] = len(held)
                if held:
                    try:
                        self.execute(held[0])
                    except SQLAlchemyError as exc:
                        # The outcome could not be written (the database went away): the lease runs
                        # out and the job runs again, as after a crash.
                        log.warning("jobs: job %s: outcome not written (%s)", held[0].id, exc)
                        self._stopping.wait(1.0)
                    held.popleft()
                    continue
                seen = self.wakeups.generation
                try:
                    if idle and (pause := self._idle_wait()) > 0:
                        self.wakeups.wait(seen, pause)
                        continue
                    held.extend(self._claim(owner))
                except SQLAlchemyError as exc:
                    log.warning("jobs: %s could not claim (%s); trying again", owner, exc)
                    self._stopping.wait(1.0)
                    continue
                idle = not held
                if idle:  # due jobs may all have gone to other workers: look again a little later
                    self.wakeups.wait(seen, MIN_IDLE_SECONDS)
        finally:
            self._release(held)  # what was claimed and not finished, the job running included
            self._holding[index] = 0

    def _claim(self, owner: str) -> list[store.Claimed]:
        with transaction(self.writers) as session:
            return store.claim(
                session, owner, self.clock.now(), leases=self.registry.leases(), limit=self.batch
            )

    def _idle_wait(self) -> float:
        """Seconds to sleep before claiming: 0 when a job is due, else until the next one is due, at most
        the poll (SQLite) or idle (PostgreSQL, where a NOTIFY wakes the thread sooner) interval."""
        listening = self._listener is not None and self._listener.listening.is_set()
        cap = self.idle_seconds if listening else self.poll_seconds
        with self.sessions() as session:
            due = figures.next_due(session, self.registry.kinds())
        if due is None:
            return cap
        return min(cap, max(0.0, (due - self.clock.now()).total_seconds()))

    def execute(self, job: store.Claimed) -> Outcome:
        """One attempt of a claimed job; its outcome is written before this returns."""
        kind = self.registry.get(job.kind)
        owner = job.lease_owner
        try:
            with self.writers() as session, session.begin():
                context = JobContext(
                    job_id=job.id,
                    kind=job.kind,
                    payload=job.payload,
                    attempt=job.attempts + 1,
                    max_attempts=job.max_attempts,
                    idempotency_key=job.idempotency_key,
                    due_at=job.due_at,
                    clock=self.clock,
                    session=session,
                )
                try:
                    kind.handler(context)
                except RetryLater as later:
                    now = self.clock.now()
                    store.postpone(
                        session,
                        job.id,
                        owner,
                        now,
                        due_at=now + timedelta(seconds=later.delay),
                        reason=EventReason.RETRY_LATER,
                        note=str(later),
                    )
                    return self._count(Outcome.POSTPONED)
                store.complete(session, job.id, owner, self.clock.now())
            return self._count(Outcome.SUCCEEDED)
        except LeaseLost:
            log.warning(
                "jobs: job %s (%s) lost its lease while running: its writes were rolled back",
                job.id,
                job.kind,
            )
            return self._count(Outcome.LOST)
        except PermanentFailure as exc:
            return self._failed(job, kind, exc, permanent=True)
        except Exception as exc:
            return self._failed(job, kind, exc, permanent=False)

    def _failed(self, job: store.Claimed, kind: JobKind, exc: Exception, *, permanent: bool) -> Outcome:
        """Write a failed attempt in its own transaction (the handler's has rolled back): retried after
        the kind's backoff, or parked when attempts ran out or the failure is permanent."""
        error = _error_text(exc)
        attempts = job.attempts + 1
        delay = None if permanent else kind.backoff.next_delay(attempts, self.rng)
        now = self.clock.now()
        try:
            with transaction(self.writers) as session:
                if delay is None or attempts >= job.max_attempts:
                    store.park(session, job.id, job.lease_owner, now, error=error, permanent=permanent)
                    outcome = Outcome.FAILED
                else:
                    due = now + timedelta(seconds=delay)
                    store.retry(session, job.id, job.lease_owner, now, due_at=due, error=error)
                    outcome = Outcome.RETRIED
        except LeaseLost:
            return self._count(Outcome.LOST)
        log.warning("jobs: job %s (%s) attempt %d %s: %s", job.id, job.kind, attempts, outcome.value, exc)
        return self._count(outcome)

    def _release(self, held: Iterable[store.Claimed]) -> None:
        """Hand back claimed jobs that were not started, each in its own transaction, due as before."""
        for job in list(held):
            try:
                with transaction(self.writers) as session:
                    store.postpone(
                        session,
                        job.id,
                        job.lease_owner,
                        self.clock.now(),
                        due_at=None,
                        reason=EventReason.RELEASED,
                        note=f"{self.worker_id} stopping",
                    )
                self._count(Outcome.RELEASED)
            except (LeaseLost, SQLAlchemyError) as exc:
                # Not handed back: its lease expires and the reaper hands it to another worker.
                log.warning("jobs: could not release job %s (%s)", job.id, exc)

    def _count(self, outcome: Outcome) -> Outcome:
        with self._stats_lock:
            self.stats[outcome] += 1
        return outcome

    # -- maintenance -------------------------------------------------------------------------

    def _maintain(self, done: threading.Event) -> None:
        """Renew this process's leases every third of the shortest lease; reap expired leases (of any
        worker) every `reap_seconds`. Runs until the runner threads have finished."""
        next_reap = self.clock.now()
        interval = min(self.heartbeat_seconds, self.reap_seconds)
        while not done.wait(interval):
            try:
                owners = [self.owner(n) for n, count in enumerate(self._holding) if count]
                if owners:
                    with transaction(self.writers) as session:
                        store.heartbeat(session, owners, self.clock.now(), leases=self.registry.leases())
                now = self.clock.now()
                if now >= next_reap and not self._stopping.is_set():
                    next_reap = now + timedelta(seconds=self.reap_seconds)
                    self._reap(now)
            except SQLAlchemyError as exc:
                log.warning("jobs: heartbeat or reaping failed (%s); trying again", exc)

    def _reap(self, now: datetime) -> None:
        with transaction(self.writers) as session:
            moved = store.reap(session, now)
        if moved:
            log.warning("jobs: took back %d job(s) whose worker stopped renewing its lease", len(moved))
            self.wakeups.wake()
