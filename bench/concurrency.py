"""`make bench` (concurrency part): write throughput and read latency under 32 concurrent writers.

On SQLite and on PostgreSQL, `quarterdeck serve` with its default settings (a worker process per
core, each with the default pool and write admission), a catalog of `--services` services, then,
each for `--seconds`:
- readers alone: 8 connections reading random services and searching (the baseline);
- 32 writers (16 on one hot service with If-Match, 16 spread over every service without) and the
  same 8 readers.
Reported: writes/s, write p50/p99, reads/s, read p50/p99/max, 5xx count, the peak resident
memory. Target: read p99 under 200 ms with the writers running, no 5xx.
Results: bench/results/concurrency-<dialect>.json and bench/results/concurrency.md.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.report import (
    RESULTS,
    WorkerMemory,
    admin_token,
    database_url,
    machine,
    run_date,
    run_dialects,
    save_markdown,
)
from quarterdeck.db import make_engine
from quarterdeck.migrations import upgrade
from tests.concurrency.load import run_load
from tests.server_process import running_server

READ_P99_TARGET_MS = 200.0
HOT = "hot-api"
LOADS = (("8 readers alone", "readers_alone"), ("32 writers + 8 readers", "with_32_writers"))


def seed(base: str, token: str, count: int) -> list[str]:
    """A team and `count` services, made over HTTP as an admin would."""
    slugs = [f"svc-{n:05d}" for n in range(count)]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        client.post("/api/v1/teams", json={"slug": "load", "name": "Load"}).raise_for_status()
        for slug in [HOT, *slugs]:
            body = {"slug": slug, "owner": "load", "tier": 2}
            client.post("/api/v1/services", json=body).raise_for_status()
    return slugs


def run_dialect(dialect: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with ExitStack() as stack:
        url = database_url(stack, dialect, work)
        upgrade(make_engine(url))
        token = admin_token(url)
        with (
            running_server(url, workers=args.workers) as (process, base),
            WorkerMemory(process.pid) as memory,
        ):
            slugs = seed(base, token, args.services)
            load = {"hot": HOT, "services": slugs, "readers": 8, "seconds": args.seconds}
            alone = run_load(base, token, writers=0, **load)
            loaded = run_load(base, token, writers=32, **load)
        peaks = memory.peaks_mb()
        return {
            "dialect": dialect,
            "services": args.services,
            "readers_alone": alone.summary(),
            "with_32_writers": loaded.summary(),
            "worker_processes": len(peaks),
            "largest_worker_rss_mb": peaks[0],
        }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Concurrency benchmark",
        "",
        f"Machine: {machine()}. Run {run_date()}. `quarterdeck serve` with "
        "its default settings (a worker process per core); the load generator (httpx, asyncio) "
        "runs on the same machine. "
        f"Target: read p99 < {READ_P99_TARGET_MS:g} ms with 32 writers, no 5xx.",
        "",
        "| dialect | load | writes/s (412s) | write p50 / p99 | reads/s | read p50 / p99 / max | 5xx "
        "| largest worker RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for label, key in LOADS:
            s = result[key]
            lines.append(
                f"| {result['dialect']} | {label} | {s['writes_per_s']} ({s['writes_refused_412']}) "
                f"| {s['write_p50_ms']} / {s['write_p99_ms']} ms | {s['reads_per_s']} "
                f"| {s['read_p50_ms']} / {s['read_p99_ms']} / {s['read_max_ms']} ms | {s['server_errors']} "
                f"| {result['largest_worker_rss_mb']} MB ({result['worker_processes']} workers) |"
            )
    lines += [
        "",
        "Writers: 16 read the hot service and change it with If-Match (a 412 when another changed it "
        "first), 16 change random services without. Readers: 70 % lookups of random services, 30 % "
        "searches. Every figure is a cold process against a catalog made just before.",
    ]
    met = all(r["with_32_writers"]["read_p99_ms"] < READ_P99_TARGET_MS for r in results)
    lines.append(f"\nRead p99 target under writers: {'met' if met else 'missed'}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=None, help="server processes (default: serve's own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = run_dialects(
            args.dialects.split(","),
            lambda dialect: run_dialect(dialect, args, Path(folder)),
            name="concurrency",
        )
    save_markdown(RESULTS, "concurrency.md", markdown(results))


if __name__ == "__main__":
    main()
