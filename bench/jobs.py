"""`make bench` (jobs part): job throughput and lag of the durable job runner.

On SQLite and on PostgreSQL, each in a fresh database:
- throughput of a no-op handler (jobs/s from the first claim to the last completion) with one worker
  of 1 and of 4 threads, claiming one job at a time and in batches of `--batch`; on PostgreSQL also
  2 `quarterdeck worker` processes x 2 threads;
- lag, from a job's due time to its handler starting, as the handler sees it, p50/p99/max:
  10,000 jobs due one after another over `--spread` seconds (a steady queue), and 10,000 jobs due at
  the same instant (a burst: the last waits for all the others, so its lag is the drain time).
Targets: >= 1,000 jobs/s on PostgreSQL with 4 workers; lag p99 under 1 s (steady queue).
Results: bench/results/jobs-<dialect>.json and bench/results/jobs.md.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.report import RESULTS, database_url, machine, percentile, run_date, run_dialects, save_markdown
from quarterdeck.clock import SystemClock
from quarterdeck.db import bulk_insert, make_engine, make_sessionmaker, transaction, writer_sessions
from quarterdeck.jobs import JobContext, JobRegistry, Outcome, Worker, store
from quarterdeck.jobs.models import Job, JobEvent
from quarterdeck.migrations import upgrade
from tests.helpers import wait_until
from tests.jobs.helpers import worker_process

TARGETS = {"pg_jobs_per_s_4_workers": 1000.0, "lag_p99_s": 1.0}
CLOCK = SystemClock()


def add_jobs(writers: sessionmaker[Session], kind: str, due: list[datetime]) -> None:
    """Many jobs at once, as enqueue would leave them (the benchmark measures running, not enqueueing)."""
    now = CLOCK.now()
    tag = f"{time.monotonic_ns()}"
    rows = [
        {
            "kind": kind,
            "payload": {},
            "state": "pending",
            "due_at": at,
            "attempts": 0,
            "max_attempts": 5,
            "idempotency_key": f"{kind}:{tag}:{n}",
            "version": 1,
            "created_at": now,
        }
        for n, at in enumerate(due)
    ]
    with transaction(writers) as session:
        for start in range(0, len(rows), 5000):
            bulk_insert(session, Job.__table__, rows[start : start + 5000])  # type: ignore[arg-type]
        store.notify(session)  # as enqueue does: listening workers wake when this commits


def clear(writers: sessionmaker[Session]) -> None:
    with transaction(writers) as session:
        session.execute(delete(JobEvent))
        session.execute(delete(Job))


def in_process(
    engine: Engine, jobs: int, *, threads: int, batch: int, spread: float = 0.0
) -> tuple[float, list[float]]:
    """Run `jobs` no-op jobs with one in-process worker: (seconds from start to the last completion,
    each handler's lag behind its due time)."""
    sessions = make_sessionmaker(engine)
    writers = writer_sessions(sessions)
    clear(writers)
    lags: list[float] = []
    lock = threading.Lock()

    def noop(ctx: JobContext) -> None:
        lag = (ctx.clock.now() - ctx.due_at).total_seconds()
        with lock:
            lags.append(lag)

    registry = JobRegistry()
    registry.register("bench.noop", noop, lease_seconds=60)
    first_due = CLOCK.now() + timedelta(seconds=1.0 if spread else 0.0)
    step = spread / jobs
    add_jobs(writers, "bench.noop", [first_due + timedelta(seconds=n * step) for n in range(jobs)])
    worker = Worker(sessions, writers, registry, clock=CLOCK, concurrency=threads, batch=batch)
    runner = threading.Thread(target=worker.run)
    started = time.perf_counter()
    runner.start()
    deadline = time.monotonic() + 600
    while worker.stats[Outcome.SUCCEEDED] < jobs and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    worker.stop()
    runner.join()
    assert worker.stats[Outcome.SUCCEEDED] == jobs, worker.stats
    return elapsed, lags


def processes(url: str, work: Path, jobs: int, batch: int) -> float:
    """Seconds for 2 `quarterdeck worker` processes x 2 threads to run `jobs` no-op jobs."""
    sessions = make_sessionmaker(make_engine(url))
    writers = writer_sessions(sessions)
    clear(writers)

    def done() -> int:
        with sessions() as session:
            query = select(func.count()).select_from(Job).where(Job.state == "succeeded")
            return int(session.execute(query).scalar_one())

    with ExitStack() as stack:
        for n in range(2):
            stack.enter_context(worker_process(url, work, f"bench-worker-{n}", concurrency=2, batch=batch))
        add_jobs(writers, "test.noop", [CLOCK.now()] * jobs)
        started = time.perf_counter()
        wait_until(lambda: done() == jobs, timeout=600, what="the jobs")
        return time.perf_counter() - started


def lag_summary(lags: list[float]) -> dict[str, float]:
    return {
        "p50_s": round(percentile(lags, 50), 4),
        "p99_s": round(percentile(lags, 99), 4),
        "max_s": round(max(lags), 4),
    }


def run_dialect(dialect: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        url = database_url(stack, dialect, work)
        engine = make_engine(url)
        upgrade(engine)
        throughput: dict[str, float] = {}
        for threads in (1, 4):
            for batch in sorted({1, args.batch}):
                seconds, _ = in_process(engine, args.jobs, threads=threads, batch=batch)
                throughput[f"{threads} thread(s), batch {batch}"] = round(args.jobs / seconds, 1)
                print(
                    f"[bench] {dialect}: {threads} thread(s), batch {batch}: {args.jobs / seconds:.0f} jobs/s"
                )
        if dialect == "postgresql":
            for batch in sorted({1, args.batch}):
                seconds = processes(url, work, args.jobs, batch)
                throughput[f"2 processes x 2 threads, batch {batch}"] = round(args.jobs / seconds, 1)
        _, steady = in_process(engine, 10_000, threads=4, batch=args.batch, spread=args.spread)
        burst_seconds, burst = in_process(engine, 10_000, threads=4, batch=args.batch)
        engine.dispose()
    return {
        "dialect": dialect,
        "jobs_per_run": args.jobs,
        "throughput_jobs_per_s": throughput,
        "lag_steady": {"jobs": 10_000, "due_over_s": args.spread, "threads": 4, "batch": args.batch}
        | lag_summary(steady),
        "lag_burst": {
            "jobs": 10_000,
            "threads": 4,
            "batch": args.batch,
            "drained_in_s": round(burst_seconds, 2),
        }
        | lag_summary(burst),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Job runner benchmark",
        "",
        f"Machine: {machine()}. Run {run_date()}. A no-op handler; each job is a claim, "
        "a handler transaction with its guarded completion, and two job_events rows. PostgreSQL is a "
        "throw-away local cluster with PostgreSQL's default durability (fsync on). "
        f"Targets: >= {TARGETS['pg_jobs_per_s_4_workers']:g} jobs/s on PostgreSQL with 4 workers; "
        f"lag p99 < {TARGETS['lag_p99_s']:g} s.",
        "",
        "| dialect | worker | jobs/s |",
        "|---|---|---|",
    ]
    for r in results:
        for label, rate in r["throughput_jobs_per_s"].items():
            lines.append(f"| {r['dialect']} | {label} | {rate} |")
    lines += ["", "| dialect | lag (due to handler start) | p50 | p99 | max |", "|---|---|---|---|---|"]
    for r in results:
        s, b = r["lag_steady"], r["lag_burst"]
        lines.append(
            f"| {r['dialect']} | steady: 10,000 jobs due over {s['due_over_s']:g} s, 4 threads, "
            f"batch {s['batch']} "
            f"| {s['p50_s']} s | {s['p99_s']} s | {s['max_s']} s |"
        )
        lines.append(
            f"| {r['dialect']} | burst: 10,000 jobs due at once, 4 threads, batch {b['batch']} "
            f"(drained in {b['drained_in_s']} s) | {b['p50_s']} s | {b['p99_s']} s | {b['max_s']} s |"
        )
    lines += [
        "",
        "Batch: jobs a worker thread claims at once (`quarterdeck worker --batch`, default 10). Steady: jobs "
        "come due at 500/s, below the throughput, so each waits only for a free thread; this is the "
        "lag target's case. Burst: every job is due at the same instant, so a job's lag is its place in "
        "the queue and p99 is about the time to drain it.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per throughput run")
    parser.add_argument("--batch", type=int, default=10, help="jobs per claim in the batched runs")
    parser.add_argument(
        "--spread", type=float, default=20.0, help="seconds the steady queue's jobs are due over"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = run_dialects(
            args.dialects.split(","), lambda dialect: run_dialect(dialect, args, Path(folder)), name="jobs"
        )
    save_markdown(RESULTS, "jobs.md", markdown(results))


if __name__ == "__main__":
    main()
