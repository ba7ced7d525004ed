"""`make bench`: the catalog at 10,000 services, measured on this machine.

Generates a synthetic company (10,000 services, 200 teams, 2,000 people, 100 systems, ~2 dependencies
per service), then measures on SQLite and on PostgreSQL:
- import time (cold, unchanged re-import, one file edited);
- GET /api/v1/services/{slug}: req/s, p50, p99 with 16 concurrent connections (wrk, random slugs);
- search p50/p95 over HTTP once 50,000 entities are indexed (37,700 more people imported);
- service page render p50/p95 over HTTP.
Results go to bench/results/catalog-<dialect>.json and bench/results/catalog.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import yaml

from bench.generate import generate
from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker, transaction
from quarterdeck.migrations import upgrade
from tests.pg_cluster import postgres_cluster
from tests.server_process import running_server

RESULTS = Path(__file__).parent / "results"
SEARCH_QUERIES = [
    "payments",
    "paym",
    "checkout",
    "chekout",
    "ledger-api",
    "search serv",
    "invoice",
    "fraud risk",
    "warehous",
    "notify",
    "trackng",
    "team 42",
    "ada",
    "grace hopper",
    "inventory-store",
    "promo",
    "routing engine",
    "geo",
    "crawl",
    "reviews",
]
TARGETS = {"import_s": 10.0, "get_p99_ms": 15.0, "search_p95_ms": 30.0, "page_p95_ms": 50.0}


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def timed_import(url: str, folder: Path, settings: Settings) -> tuple[float, Any]:
    engine = make_engine(url)
    started = time.perf_counter()
    report = import_source(make_sessionmaker(engine), str(folder), settings=settings, clock=SystemClock())
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, report


def database_url(stack: ExitStack, dialect: str, work: Path) -> str:
    """A fresh database for one benchmark run: a SQLite file, or a database in a throw-away cluster."""
    if dialect == "sqlite":
        return f"sqlite:///{work}/bench-{uuid.uuid4().hex[:6]}.db"
    server = stack.enter_context(postgres_cluster(durable=True))
    name = "bench_" + uuid.uuid4().hex[:6]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{server.split('://', 1)[1]}/{name}"


def admin_token(url: str) -> str:
    """A token for the benchmark's requests: every route needs a signed-in reader now."""
    with transaction(make_sessionmaker(make_engine(url))) as session:
        system = Actor.system("bench")
        email = f"bench-{uuid.uuid4().hex[:6]}@bench.example"
        access.create_user(session, system, email=email, role=GlobalRole.ADMIN, at=SystemClock().now())
        return access.create_token(
            session, system, name="bench", scopes=["admin"], user=email, at=SystemClock().now()
        ).token


WRK_DONE = (
    "done = function(summary, latency, requests)\n"
    "  io.write(string.format('RESULT %d %d %d %f %f %f %f\\n', summary.requests, summary.duration,"
    " summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout,"
    " latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))\nend\n"
)


def run_wrk(base: str, lua: str, *, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk with a request script (`lua`, without its `done`); req/s, errors and latency percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + WRK_DONE)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    assert match, out
    requests, duration_us, errors = int(match[1]), int(match[2]), int(match[3])
    return {
        "requests": requests,
        "errors": errors,
        "req_per_s": round(requests / (duration_us / 1e6), 1),
        "p50_ms": round(float(match[4]) / 1000, 2),
        "p95_ms": round(float(match[5]) / 1000, 2),
        "p99_ms": round(float(match[6]) / 1000, 2),
        "max_ms": round(float(match[7]) / 1000, 2),
    }


def wrk(base: str, paths: list[str], *, seconds: int, connections: int, token: str) -> dict[str, float]:
    """req/s and latency percentiles from wrk, each request a random path from `paths`."""
    lua = (
        "paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
        f"wrk.headers['Authorization'] = 'Bearer {token}'\n"
        "request = function() return wrk.format(nil, paths[math.random(#paths)]) end\n"
    )
    return run_wrk(base, lua, seconds=seconds, connections=connections)


def sequential(base: str, paths: list[str], *, token: str, warm: bool = True) -> dict[str, float]:
    """Latency of one client asking for each path in turn (after 20 warm-up requests when `warm`)."""
    samples = []
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for path in paths[:20] if warm else []:
            client.get(path)
        for path in paths:
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "p99_ms": round(percentile(samples, 99), 2),
    }


def extra_people(folder: Path, count: int) -> None:
    docs = [
        {
            "apiVersion": "quarterdeck/v1",
            "kind": "Person",
            "email": f"extra.person{i}@corp.example",
            "name": f"Extra Person {i}",
            "title": random.choice(["Engineer", "Designer", "Analyst", "Manager"]),
        }
        for i in range(count)
    ]
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for start in range(0, count, 1000):
        part = folder / f"part-{start // 1000:03d}" / "quarterdeck.yaml"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(yaml.dump_all(docs[start : start + 1000], Dumper=dumper))


def run_dialect(
    dialect: str, url: str, catalog: Path, extra: Path, args: argparse.Namespace
) -> dict[str, Any]:
    settings = Settings(database_url=url, git_cache_dir=Path(tempfile.mkdtemp()))
    upgrade(make_engine(url))
    cold, report = timed_import(url, catalog, settings)
    assert not report.errors, report.errors[:3]
    again, report_again = timed_import(url, catalog, settings)
    edited = catalog / "services" / "team-0007" / "quarterdeck.yaml"
    edited.write_text(
        edited.read_text().replace("for the synthetic company", "for the synthetic company (edited)", 1)
    )
    one_edit, report_edit = timed_import(url, catalog, settings)
    people_s, people = timed_import(url, extra, settings)
    assert not people.errors, people.errors[:3]
    result: dict[str, Any] = {
        "dialect": dialect,
        "import": {
            "entities": report.entities,
            "services": 10_000,
            "cold_s": round(cold, 2),
            "unchanged_reimport_s": round(again, 2),
            "one_file_edited_reimport_s": round(one_edit, 2),
            "edited_updated": report_edit.updated,
            "unchanged": report_again.unchanged,
        },
        "search_entities": report.entities + people.entities,
        "extra_people_import_s": round(people_s, 2),
    }
    engine = make_engine(url)
    if dialect == "postgresql":
        # Measure the steady state, not autovacuum catching up with 50,000 fresh rows mid-run.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
    with engine.connect() as conn:
        slugs = [row[0] for row in conn.exec_driver_sql("SELECT slug FROM services WHERE kind = 'component'")]
    engine.dispose()
    rng = random.Random(1)
    token = admin_token(url)
    with running_server(url, workers=args.workers) as (_process, base):
        api_paths = [f"/api/v1/services/{slug}" for slug in rng.sample(slugs, 2000)]
        # First pass: every answer is built (cache miss). Then each worker sees each path again, and wrk
        # measures the steady state a portal lives in between catalog changes.
        result["get_service_uncached"] = sequential(base, api_paths[:500], token=token, warm=False)
        # The kernel spreads connections over the workers at random: 4 passes per worker leave each
        # worker without a given path with odds of about 1 in 256.
        for _ in range(4 * args.workers):
            sequential(base, api_paths, token=token)
        result["get_service"] = wrk(base, api_paths, seconds=args.seconds, connections=16, token=token) | {
            "connections": 16,
            "workers": args.workers,
        }
        search_paths = [f"/api/v1/search?q={quote(q)}" for q in SEARCH_QUERIES] * 15
        rng.shuffle(search_paths)
        result["search"] = sequential(base, search_paths, token=token)
        page_paths = [f"/services/{slug}" for slug in rng.sample(slugs, 300)]
        result["service_page"] = sequential(base, page_paths, token=token)
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Catalog benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Targets: import < {TARGETS['import_s']} s, GET p99 < {TARGETS['get_p99_ms']} ms at 16 connections, "
        f"search p95 < {TARGETS['search_p95_ms']} ms, page p95 < {TARGETS['page_p95_ms']} ms.",
        "",
        "| dialect | import 10k services (12.3k entities) | re-import unchanged | re-import, 1 file edited "
        "| GET service: req/s, p50, p99 (16 conns) | GET uncached p50 / p99 (1 conn) "
        "| search p50 / p95 (50k entities) | service page p50 / p95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        i, g, s, p = r["import"], r["get_service"], r["search"], r["service_page"]
        lines.append(
            f"| {r['dialect']} | {i['cold_s']} s | {i['unchanged_reimport_s']} s "
            f"| {i['one_file_edited_reimport_s']} s "
            f"| {g['req_per_s']}/s, {g['p50_ms']} ms, {g['p99_ms']} ms ({g['workers']} worker(s)) "
            f"| {r['get_service_uncached']['p50_ms']} / {r['get_service_uncached']['p99_ms']} ms "
            f"| {s['p50_ms']} / {s['p95_ms']} ms | {p['p50_ms']} / {p['p95_ms']} ms |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run `bash scripts/install-test-deps.sh --bench`")
    work = Path(tempfile.mkdtemp(prefix="qd-bench."))
    results = []
    try:
        generate(work / "catalog", services=10_000, teams=200, people=2_000, systems=100)
        extra_people(work / "extra", 37_700)
        dialects = ["sqlite", "postgresql"] if args.dialect == "both" else [args.dialect]
        with ExitStack() as stack:
            for dialect in dialects:
                catalog = work / f"catalog-{dialect}"
                shutil.copytree(work / "catalog", catalog)
                url = database_url(stack, dialect, work)
                print(f"[bench] {dialect}...", flush=True)
                result = run_dialect(dialect, url, catalog, work / "extra", args)
                print(json.dumps(result, indent=2), flush=True)
                results.append(result)
                RESULTS.mkdir(exist_ok=True)
                (RESULTS / f"catalog-{dialect}.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "catalog.md").write_text(markdown(results))
        print(markdown(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
