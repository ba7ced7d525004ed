"""`make bench` (deploys part): deploy reports ingested and the environment matrix at 10,000 services.

On SQLite and on PostgreSQL, with a catalog of 10,000 services and 4 environments:
- about 100,000 deploy reports: 95,000 over HTTP in batches of 1,000, then one report per request for
  `--single-seconds` with wrk (8 connections; each report a new deploy and release, audited);
- the same one-by-one path in process (no HTTP), each report its own transaction;
- the environment matrix page (`/environments`, 100 services x 4 environments per page) p50/p95 over
  300 random pages, and the JSON matrix.
Targets: >= 2,000 single reports/s; matrix page p95 < 200 ms.
Results: bench/results/deploys-<dialect>.json and bench/results/deploys.md.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.generate import generate
from bench.report import (
    RESULTS,
    admin_token,
    database_url,
    dialects_of,
    machine,
    percentile,
    run_date,
    run_dialects,
    run_wrk,
    save_markdown,
    timed_import,
)
from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker, transaction
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from quarterdeck.migrations import upgrade
from tests.server_process import running_server

ENVIRONMENTS = [("staging", False), ("canary", True), ("production-eu", True), ("production-us", True)]
TARGETS = {"single_reports_per_s": 2000.0, "matrix_p95_ms": 200.0}
BATCH = 1000
BATCHED_REPORTS = 95_000
IN_PROCESS_REPORTS = 3_000


def report_json(deploy_id: str, service: str, env: str, version: str, started: datetime) -> dict[str, Any]:
    return {
        "id": deploy_id,
        "service": service,
        "environment": env,
        "version": version,
        "image": f"registry.bench.example/{service}:{version}",
        "commit": uuid.uuid5(uuid.NAMESPACE_OID, f"{service}@{version}").hex,
        "status": "succeeded",
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(minutes=4)).isoformat(),
    }


def setup(url: str) -> tuple[str, list[str]]:
    """Environments and a CI service token (scope deploy, every team); the services' slugs."""
    system = Actor.system("bench")
    now = SystemClock().now()
    with transaction(make_sessionmaker(make_engine(url))) as session:
        for position, (slug, production) in enumerate(ENVIRONMENTS):
            body = EnvironmentIn(
                name=slug.replace("-", " ").title(), position=position, production=production
            )
            deploys.put_environment(session, system, slug, body, at=now)
        token = access.create_token(session, system, name="ci", scopes=["deploy"], service=True, at=now).token
        slugs = [
            row[0]
            for row in session.connection().exec_driver_sql(
                "SELECT slug FROM services WHERE kind = 'component'"
            )
        ]
    return token, slugs


def batched(base: str, token: str, slugs: list[str]) -> dict[str, Any]:
    """Every service in every environment first (so the matrix is full), then more history."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    reports = [
        report_json(f"seed:{s}:{e}", s, e, "1.0.0", start + timedelta(seconds=i))
        for i, (s, (e, _p)) in enumerate((s, env) for s in slugs for env in ENVIRONMENTS)
    ]
    rng = random.Random(7)
    while len(reports) < BATCHED_REPORTS:
        n = len(reports)
        service, (env, _p) = rng.choice(slugs), rng.choice(ENVIRONMENTS)
        reports.append(
            report_json(f"hist:{n}", service, env, f"1.1.{n}", start + timedelta(days=1, seconds=n))
        )
    started = time.perf_counter()
    latencies = []
    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"}) as client:
        for offset in range(0, len(reports), BATCH):
            t0 = time.perf_counter()
            response = client.post("/api/v1/deploys", json=reports[offset : offset + BATCH])
            latencies.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 201, response.text[:300]
    elapsed = time.perf_counter() - started
    return {
        "reports": len(reports),
        "batch": BATCH,
        "seconds": round(elapsed, 2),
        "reports_per_s": round(len(reports) / elapsed, 1),
        "batch_p50_ms": round(statistics.median(latencies), 1),
        "batch_p95_ms": round(percentile(latencies, 95), 1),
    }


def single_over_http(base: str, token: str, slugs: list[str], seconds: int) -> dict[str, Any]:
    envs = ",".join(json.dumps(e) for e, _p in ENVIRONMENTS)
    sample = random.Random(3).sample(slugs, 2000)
    lua = (
        f"prefix = {json.dumps('single-' + uuid.uuid4().hex[:8])}\n"
        "counter = 0\n"
        "services = {" + ",".join(json.dumps(s) for s in sample) + "}\n"
        "envs = {" + envs + "}\n"
        "wrk.method = 'POST'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.headers['Authorization'] = 'Bearer {token}'\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  local body = string.format(\'{"id":"%s-%d","service":"%s","environment":"%s",'
        '"version":"2.%d.0","status":"succeeded","started_at":"2026-11-30T10:00:00Z",'
        '"finished_at":"2026-11-30T10:04:00Z"}\', prefix, counter, services[math.random(#services)],'
        " envs[math.random(#envs)], counter)\n"
        "  return wrk.format(nil, '/api/v1/deploys', nil, body)\n"
        "end\n"
    )
    result = run_wrk(base, lua, seconds=seconds, connections=8)
    return result | {"connections": 8}


def single_in_process(url: str, slugs: list[str]) -> dict[str, Any]:
    sessions = make_sessionmaker(make_engine(url))
    actor = Actor.system("bench")
    rng = random.Random(5)
    start = datetime(2026, 11, 29, tzinfo=UTC)
    reports = [
        DeployReport.model_validate(
            report_json(
                f"proc:{i}",
                rng.choice(slugs),
                rng.choice(ENVIRONMENTS)[0],
                f"3.{i}.0",
                start + timedelta(seconds=i),
            )
        )
        for i in range(IN_PROCESS_REPORTS)
    ]
    started = time.perf_counter()
    for one in reports:
        with transaction(sessions) as session:
            deploys.report(session, actor, [one], at=SystemClock().now())
    elapsed = time.perf_counter() - started
    return {
        "reports": len(reports),
        "seconds": round(elapsed, 2),
        "reports_per_s": round(len(reports) / elapsed, 1),
    }


def matrix_latency(base: str, token: str, pages: int) -> dict[str, Any]:
    rng = random.Random(11)
    out: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for name, path in (("page", "/environments?page={}"), ("api", "/api/v1/matrix?page={}")):
            samples = []
            for n in [rng.randint(1, 100) for _ in range(20 + pages)]:
                t0 = time.perf_counter()
                response = client.get(path.format(n))
                samples.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            samples = samples[20:]
            out[name] = {
                "n": len(samples),
                "p50_ms": round(statistics.median(samples), 1),
                "p95_ms": round(percentile(samples, 95), 1),
            }
        cells = client.get("/api/v1/matrix?page=1").json()
        out["filled_cells_on_page_1"] = sum(1 for row in cells["rows"] for d in row["live"].values() if d)
    return out


def run_dialect(dialect: str, url: str, catalog: Path, args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(database_url=url, git_cache_dir=Path(tempfile.mkdtemp()))
    upgrade(make_engine(url))
    import_s, report = timed_import(url, catalog, settings)
    assert not report.errors, report.errors[:3]
    token, slugs = setup(url)
    reader = admin_token(url)
    result: dict[str, Any] = {"dialect": dialect, "services": len(slugs), "environments": len(ENVIRONMENTS)}
    with running_server(url, workers=args.workers) as (_process, base):
        result["batched"] = batched(base, token, slugs)
        result["single_http"] = single_over_http(base, token, slugs, args.single_seconds)
        if dialect == "postgresql":
            with make_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
        result["matrix"] = matrix_latency(base, reader, args.pages)
    result["single_in_process"] = single_in_process(url, slugs)
    with make_engine(url).connect() as conn:
        result["deploys_stored"] = conn.exec_driver_sql("SELECT count(*) FROM deploys").scalar()
    result["import_catalog_s"] = round(import_s, 2)
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Deploys benchmark",
        "",
        f"Machine: {machine()}. Run {run_date()}. 10,000 services x 4 environments. "
        f"Targets: >= {TARGETS['single_reports_per_s']:.0f} single reports/s, "
        f"matrix page p95 < {TARGETS['matrix_p95_ms']:.0f} ms.",
        "",
        "| dialect | batched over HTTP (1,000 per request) | one per request over HTTP (8 conns) "
        "| one per transaction in process | matrix page p50 / p95 | matrix JSON p50 / p95 | deploys stored |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b, s, p, m = r["batched"], r["single_http"], r["single_in_process"], r["matrix"]
        lines.append(
            f"| {r['dialect']} | {b['reports']} in {b['seconds']} s: {b['reports_per_s']}/s "
            f"| {s['requests']} in {s['requests'] / s['req_per_s']:.0f} s: {s['req_per_s']}/s, "
            f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, {s['errors']} errors "
            f"| {p['reports_per_s']}/s | {m['page']['p50_ms']} / {m['page']['p95_ms']} ms "
            f"| {m['api']['p50_ms']} / {m['api']['p95_ms']} ms | {r['deploys_stored']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--single-seconds", type=int, default=20, help="wrk duration of the one-by-one run")
    parser.add_argument("--pages", type=int, default=300, help="matrix pages timed")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run `bash scripts/install-test-deps.sh --bench`")
    work = Path(tempfile.mkdtemp(prefix="qd-bench-deploys."))
    try:
        generate(work / "catalog", services=10_000, teams=200, people=2_000, systems=100)
        with ExitStack() as stack:

            def one(dialect: str) -> dict[str, Any]:
                url = database_url(stack, dialect, work)
                print(f"[bench deploys] {dialect}...", flush=True)
                return run_dialect(dialect, url, work / "catalog", args)

            results = run_dialects(dialects_of(args.dialect), one, name="deploys")
        save_markdown(RESULTS, "deploys.md", markdown(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
