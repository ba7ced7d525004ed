"""`make bench`: the catalog at 10,000 and 100,000 services, cold, on SQLite and PostgreSQL.

For each size (10,000 services with 200 teams, 2,000 people and 100 systems; other sizes scaled from
that: 100,000 services, 2,000 teams, 20,000 people, 1,000 systems) and each database, in a fresh one:
- import: cold, re-import of the unchanged source, re-import after one file was edited;
- deploy records (10 per service: 1,000,000 at 100,000 services), written straight into the deploy
  tables (releases, deploys, their first status events, the live version per service and
  environment), then ANALYZE (SQLite) or VACUUM (ANALYZE) (PostgreSQL);
- each endpoint (API lookup, owner filter, tag filter, full-text search, service page, team page,
  environment matrix, a service's deploys) with wrk over random paths that cover the whole catalog,
  at 1 and 16 connections, each run against a new `quarterdeck serve` process with its default
  settings (cold: nothing asked of it before but its start-up health check). Beside the cold
  16-connection run, a warm one: the same process replaying the paths it was just asked;
- the peak resident memory of each of the server's worker processes.
Results: <out>/catalog-<dialect>-<size>.json and <out>/catalog.md (out: bench/results).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import text

from bench.generate import FIRST, LAST, SUFFIXES, WORDS, Catalog, generate_catalog
from bench.report import (
    RESULTS,
    WorkerMemory,
    admin_token,
    database_url,
    dialects_of,
    machine,
    run_date,
    run_dialects,
    run_wrk,
    save_markdown,
    timed_import,
)
from quarterdeck.access.schemas import Actor
from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import bulk_insert, make_engine, make_sessionmaker, transaction
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.models import Deploy, DeployEvent, LiveVersion, Release
from quarterdeck.deploys.schemas import EnvironmentIn
from quarterdeck.migrations import upgrade
from tests.server_process import running_server

# Backstage's catalog backend (@backstage/plugin-catalog-backend 4.0.5, better-sqlite3, Node 20) with
# 10,000 components on SQLite, measured on the same machine kind (2 cores) with wrk -t1 -c16 -d20s per
# query. Source: /work/shared/research/backstage-catalog-perf.md (measured 2026-11-25).
BACKSTAGE_10K: dict[str, dict[str, float]] = {
    "api_get": {"req_per_s": 2110.0, "p50_ms": 6.8, "p99_ms": 18.0},
    "owner_filter": {"req_per_s": 9.8, "p99_ms": 12_400.0},
    "search": {"req_per_s": 49.0, "p99_ms": 2_980.0},
    "import": {"seconds": 232.0},
    "memory": {"peak_rss_mb": 689.0},
}
BACKSTAGE_10K_POSTGRESQL = (
    "GET by name ~1,600/s, owner filter ~465/s (p99 < 100 ms), full-text ~44/s, ingest 100 s"
)
"""The same file's Backstage figures on PostgreSQL 15 (approximate there), quoted beside the table."""
LARGE = 100_000
"""Sizes from here on have the targets the issue sets at 100,000 services."""


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    kind: str
    """'api' (a lookup), 'search' or 'page' (HTML)."""


ENDPOINTS = (
    Endpoint("api_get", "API lookup `GET /api/v1/services/{slug}`", "api"),
    Endpoint("owner_filter", "Owner filter `GET /api/v1/services?owner={team}&per_page=50`", "api"),
    Endpoint("tag_filter", "Tag filter `GET /api/v1/services?tag={tag}&per_page=50&page={n}`", "api"),
    Endpoint("search", "Full-text search `GET /api/v1/search?q={term}&limit=50`", "search"),
    Endpoint("service_page", "Service page `GET /services/{slug}`", "page"),
    Endpoint("team_page", "Team page `GET /teams/{slug}`", "page"),
    Endpoint("matrix_page", "Environment matrix `GET /environments?page={n}`", "page"),
    Endpoint("deploys_page", "A service's deploys `GET /deploys?service={slug}`", "page"),
)
ENVIRONMENTS = (("staging", False), ("canary", True), ("production-eu", True), ("production-us", True))
MATRIX_PAGE = 100
"""Services per page of /environments (deploys/views.py)."""
SEARCH_TERMS = sorted(
    {*WORDS, *SUFFIXES, *FIRST, *LAST}
    | {word[:4] for word in WORDS if len(word) > 5}
    | {f"{WORDS[n]} {SUFFIXES[n % len(SUFFIXES)]}" for n in range(0, len(WORDS), 3)}
    | {f"{FIRST[n]} {LAST[n % len(LAST)]}" for n in range(len(FIRST))}
)
"""Words that occur in the generated catalog (service slugs, titles, descriptions, tags, people's
names), prefixes of them, and two-word queries."""

# Rough costs on the project's 2-core machine, for the estimate printed at the start.
GENERATE_S_PER_SERVICE = 0.00015
IMPORTS_S_PER_SERVICE = {"sqlite": 0.0013, "postgresql": 0.0017}
LOAD_S_PER_DEPLOY = {"sqlite": 0.00004, "postgresql": 0.00005}
SERVER_START_S = {"sqlite": 7.0, "postgresql": 8.0}
"""Start to health check and stop of `quarterdeck serve` with 2 workers; each cold run has its own."""


def scale(services: int) -> dict[str, int]:
    """Teams, people and systems for a catalog of `services`, in 10,000's proportions."""
    return {
        "services": services,
        "teams": max(1, services // 50),
        "people": max(1, services // 5),
        "systems": max(1, services // 100),
    }


def log(started: float, message: str) -> None:
    elapsed = int(time.monotonic() - started)
    print(f"[bench {elapsed // 60:3d}:{elapsed % 60:02d}] {message}", flush=True)


# ---------------------------------------------------------------- deploy records


def load_deploys(url: str, services: list[str], total: int) -> dict[str, Any]:
    """`total` deploys spread evenly over `services` and ENVIRONMENTS, written straight into the tables
    the deploy pages read (a release per version, each deploy's first status event, the live version
    per service and environment by the rule of deploys/queries.LIVE_ORDER); no audit entries."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    actor = Actor.system("bench")
    now = SystemClock().now()
    started = time.perf_counter()
    with transaction(sessions) as session:
        env_ids = [
            deploys.put_environment(
                session,
                actor,
                slug,
                EnvironmentIn(name=slug.replace("-", " ").title(), position=position, production=production),
                at=now,
            ).id
            for position, (slug, production) in enumerate(ENVIRONMENTS)
        ]
    rng = random.Random(13)
    span = timedelta(days=120)
    per_service, extra = divmod(total, len(services))
    step = span / max(1, per_service + 1)
    counts: Counter[str] = Counter()
    live: dict[tuple[str, int], int] = {}
    deploy_id = release_id = 0
    chunk = 2000
    for first in range(0, len(services), chunk):
        releases: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for index in range(first, min(first + chunk, len(services))):
            slug = services[index]
            count = per_service + (1 if index < extra else 0)
            offset = timedelta(seconds=index % 86_400)
            for n in range(count):
                if n % len(env_ids) == 0:
                    release_id += 1
                    version = f"1.{n // len(env_ids)}.0"
                    releases.append(
                        {
                            "id": release_id,
                            "service_slug": slug,
                            "version": version,
                            "image": f"registry.corp.example/{slug}:{version}",
                            "digest": None,
                            "commit": hashlib.sha1(f"{slug}@{version}".encode()).hexdigest(),
                            "notes": "",
                            "created_by": actor.label,
                            "created_at": now - span + step * n + offset,
                        }
                    )
                deploy_id += 1
                env_id = env_ids[n % len(env_ids)]
                roll = rng.random()
                status = "failed" if roll < 0.05 else "rolled_back" if roll < 0.07 else "succeeded"
                if n == count - 1 and rng.random() < 0.02:
                    status = "running"
                begun = now - span + step * n + offset
                finished = None if status == "running" else begun + timedelta(minutes=4)
                rows.append(
                    {
                        "id": deploy_id,
                        "external_id": f"bench:{slug}:{n}",
                        "service_slug": slug,
                        "environment_id": env_id,
                        "release_id": release_id,
                        "status": status,
                        "source": "ci",
                        "deployed_by": actor.label,
                        "started_at": begun,
                        "finished_at": finished,
                        "notes": "",
                        "reported_at": finished or begun,
                        "version": 1,
                    }
                )
                events.append(
                    {
                        "id": deploy_id,
                        "deploy_id": deploy_id,
                        "from_status": None,
                        "to_status": status,
                        "at": finished or begun,
                        "actor": actor.label,
                        "reason": "",
                    }
                )
                counts[status] += 1
                if status == "succeeded":
                    # Each later deploy of a service finishes later: the last succeeded one is live.
                    live[(slug, env_id)] = deploy_id
        with transaction(sessions) as session:
            bulk_insert(session, Release.__table__, releases)  # type: ignore[arg-type]
            bulk_insert(session, Deploy.__table__, rows)  # type: ignore[arg-type]
            bulk_insert(session, DeployEvent.__table__, events)  # type: ignore[arg-type]
    live_rows = [{"service_slug": s, "environment_id": e, "deploy_id": d} for (s, e), d in live.items()]
    with transaction(sessions) as session:
        for first in range(0, len(live_rows), 20_000):
            bulk_insert(session, LiveVersion.__table__, live_rows[first : first + 20_000])  # type: ignore[arg-type]
        if engine.dialect.name == "postgresql":
            # Ids were given explicitly: move the sequences past them, as the portal's own inserts need.
            for table in ("releases", "deploys", "deploy_events"):
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                session.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {table}))"))
    loaded = time.perf_counter() - started
    analyze_started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM (ANALYZE)")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    analyzed = time.perf_counter() - analyze_started
    engine.dispose()
    return {
        "deploys": deploy_id,
        "releases": release_id,
        "events": deploy_id,
        "live_versions": len(live_rows),
        "environments": len(env_ids),
        "statuses": dict(counts),
        "load_s": round(loaded, 2),
        "analyze_s": round(analyzed, 2),
    }


# ---------------------------------------------------------------- the server and its memory


@contextmanager
def cold_server(url: str, workers: int | None) -> Iterator[tuple[str, WorkerMemory, float]]:
    """A new server process (its defaults; `--workers` only when given), sampled for memory; and the
    seconds it took to answer its health check."""
    started = time.perf_counter()
    with running_server(url, workers=workers) as (process, base), WorkerMemory(process.pid) as memory:
        yield base, memory, round(time.perf_counter() - started, 1)


# ---------------------------------------------------------------- requests


def endpoint_paths(catalog: Catalog) -> dict[str, list[str]]:
    """For each endpoint, every path it is asked for: together they cover the whole catalog."""
    tag_pages = [(tag, page) for tag, n in sorted(catalog.tags.items()) for page in range(1, -(-n // 50) + 1)]
    matrix_pages = max(1, -(-len(catalog.services) // MATRIX_PAGE))
    return {
        "api_get": [f"/api/v1/services/{slug}" for slug in catalog.services],
        "owner_filter": [f"/api/v1/services?owner={team}&per_page=50" for team in catalog.teams],
        "tag_filter": [f"/api/v1/services?tag={tag}&per_page=50&page={page}" for tag, page in tag_pages],
        "search": [f"/api/v1/search?q={quote(term)}&limit=50" for term in SEARCH_TERMS],
        "service_page": [f"/services/{slug}" for slug in catalog.services],
        "team_page": [f"/teams/{team}" for team in catalog.teams],
        "matrix_page": [f"/environments?page={page}" for page in range(1, matrix_pages + 1)],
        "deploys_page": [f"/deploys?service={slug}" for slug in catalog.services],
    }


def wrk_random(
    base: str,
    paths_file: Path,
    token: str,
    *,
    seed: int,
    connections: int,
    seconds: int,
    timeout_s: float,
    replay: int = 0,
) -> dict[str, Any]:
    """wrk asking for paths drawn at random from `paths_file` (one a line). With `replay`, the first
    `replay` paths of the sequence `seed` draws are asked again and again (a warm run after a cold one
    with the same seed asks only paths the server has answered)."""
    lua = (
        "paths = {}\n"
        f"for line in io.lines({json.dumps(str(paths_file))}) do paths[#paths + 1] = line end\n"
        f"wrk.headers['Authorization'] = 'Bearer {token}'\n"
        f"local seed, replay, count = {seed}, {replay}, 0\n"
        "math.randomseed(seed)\n"
        "request = function()\n"
        "  if replay > 0 and count >= replay then math.randomseed(seed); count = 0 end\n"
        "  count = count + 1\n"
        "  return wrk.format(nil, paths[math.random(#paths)])\n"
        "end\n"
    )
    return run_wrk(base, lua, seconds=seconds, connections=connections, timeout_s=timeout_s) | {
        "connections": connections,
        "seconds": seconds,
    }


def statuses(base: str, paths: list[str], token: str, n: int = 5) -> dict[str, int]:
    """The status of a few random paths, asked after the measured runs: what a run's errors were."""
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for path in random.Random(5).sample(paths, min(n, len(paths))):
            try:
                seen[str(client.get(path).status_code)] += 1
            except httpx.HTTPError as exc:
                seen[type(exc).__name__] += 1
    return dict(seen)


def failure(exc: BaseException) -> dict[str, Any]:
    return {"failed": f"{type(exc).__name__}: {exc}"[:600]}


def measure(
    endpoint: Endpoint,
    paths: list[str],
    url: str,
    token: str,
    work: Path,
    args: argparse.Namespace,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Each connection count against its own new server; a warm run on the last one."""
    paths_file = work / f"paths-{endpoint.key}.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    record: dict[str, Any] = {"label": endpoint.label, "paths": len(paths), "runs": {}, "memory_mb": []}
    connections: list[int] = args.connections
    for n, conns in enumerate(connections):
        seed = 1000 + 100 * ENDPOINTS.index(endpoint) + n
        try:
            with cold_server(url, args.workers) as (base, memory, start_s):
                cold = wrk_random(
                    base,
                    paths_file,
                    token,
                    seed=seed,
                    connections=conns,
                    seconds=args.seconds,
                    timeout_s=args.timeout,
                )
                record["runs"][f"cold_{conns}"] = cold | {"server_start_s": start_s}
                progress(f"{endpoint.key} cold, {conns} conn(s): {summary(cold)}")
                if n == len(connections) - 1:
                    if args.warm_seconds > 0:
                        try:
                            warm = wrk_random(
                                base,
                                paths_file,
                                token,
                                seed=seed,
                                connections=conns,
                                seconds=args.warm_seconds,
                                timeout_s=args.timeout,
                                replay=cold["requests"],
                            )
                        except Exception as exc:
                            warm = failure(exc)
                        record["runs"][f"warm_{conns}"] = warm
                        progress(f"{endpoint.key} warm, {conns} conn(s): {summary(warm)}")
                    record["statuses_after_runs"] = statuses(base, paths, token)
            record["memory_mb"].append(memory.peaks_mb())
        except Exception as exc:
            record["runs"].setdefault(f"cold_{conns}", failure(exc))
            progress(f"{endpoint.key} cold, {conns} conn(s): FAILED {exc}")
    return record


def summary(run: dict[str, Any]) -> str:
    if "failed" in run:
        return f"failed: {run['failed']}"
    errors = f", {run['errors']} ERRORS" if run["errors"] else ""
    return (
        f"{run['req_per_s']:,.1f}/s, p50 {run['p50_ms']} p95 {run['p95_ms']} p99 {run['p99_ms']} ms{errors}"
    )


# ---------------------------------------------------------------- one size, one database


def edit_target(catalog_dir: Path, teams: int) -> Path:
    return catalog_dir / "services" / f"team-{min(7, teams - 1):04d}" / "quarterdeck.yaml"


def run_one(
    dialect: str,
    url: str,
    catalog: Catalog,
    catalog_dir: Path,
    deploy_records: int,
    work: Path,
    args: argparse.Namespace,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    size = len(catalog.services)
    result: dict[str, Any] = {
        "dialect": dialect,
        "services": size,
        "catalog": scale(size) | {"entities": catalog.entities, "tags": len(catalog.tags)},
        "run": run_date(),
        "machine": machine(),
    }
    settings = Settings(database_url=url, git_cache_dir=work / f"git-{dialect}-{size}")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        cold, report = timed_import(url, catalog_dir, settings)
        progress(f"import cold: {cold:.1f} s ({report.entities} entities, {len(report.errors)} errors)")
        again, report_again = timed_import(url, catalog_dir, settings)
        progress(f"re-import unchanged: {again:.1f} s")
        edited = edit_target(catalog_dir, result["catalog"]["teams"])
        edited.write_text(
            edited.read_text().replace("for the synthetic company", "for the synthetic company (edited)", 1)
        )
        one_edit, report_edit = timed_import(url, catalog_dir, settings)
        progress(f"re-import, one file edited: {one_edit:.1f} s")
        result["import"] = {
            "entities": report.entities,
            "errors": len(report.errors),
            "first_errors": [str(e) for e in report.errors[:3]],
            "cold_s": round(cold, 2),
            "unchanged_reimport_s": round(again, 2),
            "unchanged": report_again.unchanged,
            "one_file_edited_reimport_s": round(one_edit, 2),
            "edited_updated": report_edit.updated,
        }
    except Exception as exc:
        result["import"] = failure(exc)
        progress(f"import FAILED: {exc}")
    try:
        result["deploys"] = load_deploys(url, catalog.services, deploy_records)
        progress(
            f"{result['deploys']['deploys']:,} deploy records loaded in {result['deploys']['load_s']} s, "
            f"analyzed in {result['deploys']['analyze_s']} s"
        )
    except Exception as exc:
        result["deploys"] = failure(exc)
        progress(f"deploy records FAILED: {exc}")
    result["endpoints"] = {}
    try:
        token = admin_token(url)
    except Exception as exc:
        result["token"] = failure(exc)
        progress(f"no token, no requests: {exc}")
        token = ""
    paths = endpoint_paths(catalog)
    for endpoint in ENDPOINTS:
        if endpoint.key in args.endpoints and token:
            result["endpoints"][endpoint.key] = measure(
                endpoint, paths[endpoint.key], url, token, work, args, progress
            )
    per_worker = [mb for e in result["endpoints"].values() for server in e["memory_mb"] for mb in server]
    result["memory"] = {
        "peak_rss_mb_per_worker": max(per_worker, default=None),
        "worker_processes": max(
            (len(s) for e in result["endpoints"].values() for s in e["memory_mb"]), default=0
        ),
    }
    result["server"] = server_defaults(args)
    return result


def server_defaults(args: argparse.Namespace) -> dict[str, Any]:
    fields = Settings.model_fields
    return {
        "command": "quarterdeck serve" + (f" --workers {args.workers}" if args.workers else ""),
        "settings": {
            name: fields[name].default
            for name in (
                "db_pool_size",
                "db_pool_timeout_seconds",
                "max_concurrent_writes",
                "embedded_worker",
            )
            if name in fields
        },
        "wrk": f"-t1, -c{'/'.join(map(str, args.connections))}, -d{args.seconds}s "
        f"(warm {args.warm_seconds}s), --timeout {args.timeout:g}s",
    }


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class Target:
    text: str
    check: Callable[[Any], bool]
    """Given the figure judged: a number, or a wrk run's dict."""


def _run_of(result: dict[str, Any], key: str, run: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = result.get("endpoints", {}).get(key, {}).get("runs", {}).get(run)
    return found


def run_getter(key: str, run: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    return lambda result: _run_of(result, key, run)


def rate_of(key: str, run: str) -> Callable[[dict[str, Any]], float | None]:
    def rate(result: dict[str, Any]) -> float | None:
        found = _run_of(result, key, run)
        return float(found["req_per_s"]) if found and "req_per_s" in found else None

    return rate


def at_least(field: str, floor: float) -> Callable[[Any], bool]:
    return lambda run: bool(run[field] >= floor)


def _cell(run: dict[str, Any] | None) -> str:
    if run is None:
        return "not run"
    if "failed" in run:
        return f"**failed**: {run['failed'][:200]}"
    cell = (
        f"{run['req_per_s']:,.1f}/s; p50 {run['p50_ms']:g}, p95 {run['p95_ms']:g}, p99 {run['p99_ms']:g} ms"
    )
    if run["errors"]:
        cell += (
            f" **⚠ {run['errors']:,} errors of {run['requests']:,}: {run['non_2xx']:,} non-2xx, "
            f"{run['timeouts']:,} timeouts, {run['socket']:,} socket**"
        )
    return cell


def _verdict(
    results: dict[str, dict[str, Any]],
    dialects: list[str],
    value: Callable[[dict[str, Any]], Any],
    targets: list[Target],
) -> str:
    if not targets:
        return ""
    verdicts = []
    for dialect in dialects:
        got = value(results[dialect]) if dialect in results else None
        if got is None or (isinstance(got, dict) and "failed" in got):
            verdicts.append(f"{NAMES[dialect]}: not measured")
        elif isinstance(got, dict) and got.get("errors"):
            verdicts.append(f"{NAMES[dialect]}: **missed** (errors)")
        else:
            ok = all(t.check(got) for t in targets)
            verdicts.append(f"{NAMES[dialect]}: {'met' if ok else '**missed**'}")
    return "; ".join(verdicts)


NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _ratio(
    results: dict[str, dict[str, Any]],
    dialects: list[str],
    ours: Callable[[dict[str, Any]], float | None],
    theirs: float,
    better_when_higher: bool,
) -> str:
    parts = []
    for dialect in dialects:
        value = ours(results[dialect]) if dialect in results else None
        if not value:
            parts.append("—")
        else:
            parts.append(f"{(value / theirs if better_when_higher else theirs / value):.1f}x")
    return " / ".join(parts)


def _number(result: dict[str, Any], section: str, key: str) -> float | None:
    part = result.get(section, {})
    value = part.get(key) if isinstance(part, dict) else None
    return float(value) if isinstance(value, int | float) else None


def size_table(
    size: int, results: dict[str, dict[str, Any]], dialects: list[str], args: argparse.Namespace
) -> list[str]:
    large = size >= LARGE
    backstage_note = "Backstage (10k, SQLite)" if not large else "Backstage (no figure at this size)"
    head = ["measurement", *(NAMES[d] for d in dialects), backstage_note]
    head += [
        f"x Backstage{' 10k' if large else ''} ({' / '.join(NAMES[d] for d in dialects)})",
        "target",
        "met?",
    ]
    lines = [f"## {size:,} services", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(
        label: str, cells: list[str], backstage: str = "", ratio: str = "", target: str = "", met: str = ""
    ) -> None:
        lines.append(
            "| " + " | ".join([label, *cells, backstage if not large else "", ratio, target, met]) + " |"
        )

    def import_value(key: str) -> Callable[[dict[str, Any]], Any]:
        return lambda r: _number(r, "import", key)

    def seconds_cell(r: dict[str, Any] | None, key: str) -> str:
        if r is None:
            return "not run"
        part = r.get("import", {})
        if "failed" in part:
            return f"**failed**: {part['failed'][:200]}"
        text_ = f"{part[key]:g} s"
        if key == "cold_s":
            text_ += f" ({part['entities']:,} entities" + (
                f", **{part['errors']} errors**)" if part["errors"] else ")"
            )
        return text_

    import_targets = {
        "cold_s": [Target("< 60 s", lambda v: bool(v < 60))] if large else [],
        "unchanged_reimport_s": [Target("< 5 s", lambda v: bool(v < 5))] if large else [],
        "one_file_edited_reimport_s": [],
    }
    for key, label in (
        ("cold_s", "Import, cold"),
        ("unchanged_reimport_s", "Re-import, source unchanged"),
        ("one_file_edited_reimport_s", "Re-import, one file edited"),
    ):
        targets = import_targets[key]
        row(
            label,
            [seconds_cell(results.get(d), key) for d in dialects],
            f"{BACKSTAGE_10K['import']['seconds']:g} s (ingest)" if key == "cold_s" else "",
            _ratio(results, dialects, import_value(key), BACKSTAGE_10K["import"]["seconds"], False)
            if key == "cold_s"
            else "",
            ", ".join(t.text for t in targets),
            _verdict(results, dialects, import_value(key), targets),
        )

    def deploys_cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "not run"
        part = r.get("deploys", {})
        if "failed" in part:
            return f"**failed**: {part['failed'][:200]}"
        return f"{part['deploys']:,} in {part['load_s']:g} s (+ analyze {part['analyze_s']:g} s)"

    row(
        "Deploy records written straight to the tables (set-up, not a product figure)",
        [deploys_cell(results.get(d)) for d in dialects],
    )

    for endpoint in ENDPOINTS:
        if endpoint.key not in args.endpoints:
            continue
        theirs = BACKSTAGE_10K.get(endpoint.key)
        for conns in args.connections:
            for temperature in ("cold", "warm"):
                run_key = f"{temperature}_{conns}"
                if temperature == "warm" and (conns != args.connections[-1] or args.warm_seconds <= 0):
                    continue
                targets = endpoint_targets(endpoint, conns, temperature, large)
                ratio = ""
                backstage = ""
                if theirs and conns == 16 and temperature == "cold":
                    backstage = f"{theirs['req_per_s']:,g}/s; p99 {theirs['p99_ms']:,g} ms"
                    ratio = _ratio(
                        results,
                        dialects,
                        rate_of(endpoint.key, run_key),
                        theirs["req_per_s"],
                        True,
                    )
                label = f"{endpoint.label}: {temperature}, {conns} conn{'s' if conns > 1 else ''}"
                if temperature == "warm":
                    label += " (the same process asked the cold run's paths again)"
                row(
                    label,
                    [
                        _cell(_run_of(results[d], endpoint.key, run_key) if d in results else None)
                        for d in dialects
                    ],
                    backstage,
                    ratio,
                    "; ".join(t.text for t in targets)
                    if targets
                    else ("not judged (warm)" if temperature == "warm" else ""),
                    _verdict(results, dialects, run_getter(endpoint.key, run_key), targets),
                )

    def memory_value(r: dict[str, Any]) -> float | None:
        return _number(r, "memory", "peak_rss_mb_per_worker")

    memory_targets = [Target("< 500 MB per worker", lambda v: bool(v < 500))] if large else []
    row(
        "Peak RSS per worker (largest worker, over every run)",
        [
            f"{memory_value(results[d]):g} MB ({results[d]['memory']['worker_processes']} worker(s))"
            if d in results and memory_value(results[d])
            else "not measured"
            for d in dialects
        ],
        f"{BACKSTAGE_10K['memory']['peak_rss_mb']:g} MB",
        _ratio(results, dialects, memory_value, BACKSTAGE_10K["memory"]["peak_rss_mb"], False),
        ", ".join(t.text for t in memory_targets),
        _verdict(results, dialects, memory_value, memory_targets),
    )
    return lines


def endpoint_targets(endpoint: Endpoint, conns: int, temperature: str, large: bool) -> list[Target]:
    """The issue's targets that apply to one row: throughput at 16 connections (as Backstage was
    measured), latency on every cold run; warm runs are not judged."""
    if temperature != "cold":
        return []
    targets: list[Target] = []
    theirs = BACKSTAGE_10K.get(endpoint.key)
    multiple = {"api_get": 3, "owner_filter": 50, "search": 10}.get(endpoint.key)
    if theirs and multiple and conns == 16:
        floor = multiple * theirs["req_per_s"]
        targets.append(Target(f">= {multiple}x Backstage ({floor:,g}/s)", at_least("req_per_s", floor)))
    if endpoint.key == "api_get":
        targets.append(Target("p99 <= 15 ms", lambda r: bool(r["p99_ms"] <= 15)))
    if endpoint.key == "search":
        targets.append(Target("p95 <= 30 ms", lambda r: bool(r["p95_ms"] <= 30)))
    if large and endpoint.kind == "api":
        targets.append(Target("p99 < 20 ms (API lookups at 100k)", lambda r: bool(r["p99_ms"] < 20)))
    if large and endpoint.kind == "page":
        targets.append(Target("p95 < 200 ms (pages at 100k)", lambda r: bool(r["p95_ms"] < 200)))
    return targets


def markdown(
    by_size: dict[int, dict[str, dict[str, Any]]], dialects: list[str], args: argparse.Namespace
) -> str:
    any_result = next((r for results in by_size.values() for r in results.values()), {})
    server = any_result.get("server", server_defaults(args))
    workers = sorted(
        {
            r.get("memory", {}).get("worker_processes", 0)
            for results in by_size.values()
            for r in results.values()
        }
    )
    lines = [
        "# Catalog benchmark",
        "",
        f"Machine: {machine()}. Run {run_date()}. Server: `{server['command']}` with every other setting at "
        f"its default ({', '.join(f'{k}={v}' for k, v in server['settings'].items())}); worker processes "
        f"seen: {', '.join(map(str, workers))}. PostgreSQL: a local cluster with its default durability. "
        f"Load: wrk {server['wrk']}, on the same machine.",
        "",
        "Cold: every figure marked cold is a new server process (asked nothing before but its start-up "
        "health check) and random paths over the whole catalog: every service, every team, every page of "
        f"every tag, every page of the matrix, {len(SEARCH_TERMS)} search terms (words of the catalog, "
        "prefixes, two-word queries); the database's files are in the OS cache as after the import. "
        "Warm: the same process right after, asked the paths of the cold run again; shown beside the cold "
        "figure, never judged against a target. Latency targets apply to every cold run, throughput "
        "targets to 16 connections (as Backstage was measured). A run with errors (non-2xx answers, "
        "timeouts, socket errors) misses its target whatever its speed. wrk counts answers >= 400 as "
        "errors, not redirects: 5 paths of each endpoint are asked once more after its runs, and any "
        "status but 200 is listed under the table.",
        "",
        "Backstage: its catalog backend with 10,000 components on SQLite, on the same machine kind, wrk "
        "-t1 -c16 -d20s (bench/run.py BACKSTAGE_10K). At 100,000 services the ratios are against its "
        "10,000-service figures. Every ratio and Backstage target is against Backstage on SQLite, as the "
        f"issue sets them; Backstage on PostgreSQL 15 at 10,000: {BACKSTAGE_10K_POSTGRESQL}.",
        "",
    ]
    for size, results in sorted(by_size.items()):
        lines += [*size_table(size, results, dialects, args), ""]
        for dialect, result in results.items():
            checked = {k: e.get("statuses_after_runs") for k, e in result.get("endpoints", {}).items()}
            odd = {k: v for k, v in checked.items() if v and set(v) != {"200"}}
            if odd:
                lines.append(f"{NAMES[dialect]}, {size:,}: statuses of 5 paths asked after the runs: {odd}.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- main


def estimate_s(sizes: list[int], dialects: list[str], args: argparse.Namespace) -> float:
    endpoints = len(args.endpoints)
    total = 0.0
    for size in sizes:
        total += size * GENERATE_S_PER_SERVICE
        for dialect in dialects:
            total += size * IMPORTS_S_PER_SERVICE[dialect]
            total += deploys_for(size, sizes, args) * LOAD_S_PER_DEPLOY[dialect]
            runs = len(args.connections) * (args.seconds + SERVER_START_S[dialect])
            total += endpoints * (runs + args.warm_seconds + 1)
    return total


def deploys_for(size: int, sizes: list[int], args: argparse.Namespace) -> int:
    """`--deploys` at the largest size, scaled down with the size; 10 per service by default."""
    largest = max(sizes)
    at_largest: int = args.deploys if args.deploys is not None else 10 * largest
    return round(at_largest * size / largest)


def merge_saved(by_size: dict[int, dict[str, dict[str, Any]]], out: Path, dialects: list[str]) -> list[str]:
    """Add the results saved in `out` by earlier runs (catalog-<dialect>-<size>.json) for the sizes and
    dialects this run did not measure; the dialects the report then covers."""
    for saved in sorted(out.glob("catalog-*-*.json")):
        dialect, size = saved.stem.removeprefix("catalog-").rsplit("-", 1)
        if size.isdigit():
            by_size.setdefault(int(size), {}).setdefault(dialect, json.loads(saved.read_text()))
    covered = {dialect for results in by_size.values() for dialect in results}
    return [d for d in ("sqlite", "postgresql") if d in covered or d in dialects]


def ints(value: str) -> list[int]:
    return [int(part.replace("_", "")) for part in value.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=ints, default=[10_000, 100_000], help="services, e.g. 10000,100000")
    parser.add_argument("--dialect", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration of each cold run")
    parser.add_argument(
        "--warm-seconds",
        type=int,
        default=None,
        help="wrk duration of each warm run (default 30%%; 0: none)",
    )
    parser.add_argument("--connections", type=ints, default=[1, 16], help="wrk connections, e.g. 1,16")
    parser.add_argument(
        "--workers", type=int, default=None, help="server processes (default: the server's own default)"
    )
    parser.add_argument(
        "--deploys",
        type=int,
        default=None,
        help="deploy records at the largest size (default: 10 per service)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk's timeout per request, seconds")
    parser.add_argument(
        "--endpoints",
        type=lambda v: v.split(","),
        default=[e.key for e in ENDPOINTS],
        help="endpoint keys to run",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go (default bench/results)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="report also the results earlier runs saved in --out for sizes and dialects not measured now",
    )
    args = parser.parse_args()
    args.connections = sorted(set(args.connections))
    if args.warm_seconds is None:
        args.warm_seconds = max(1, args.seconds * 3 // 10)
    unknown = set(args.endpoints) - {e.key for e in ENDPOINTS}
    if unknown:
        sys.exit(f"unknown endpoints {sorted(unknown)}; known: {[e.key for e in ENDPOINTS]}")
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run `bash scripts/install-test-deps.sh --bench`")
    dialects = dialects_of(args.dialect)
    sizes = sorted(set(args.sizes))
    started = time.monotonic()
    estimate = estimate_s(sizes, dialects, args)
    log(
        started, f"sizes {sizes}, {dialects}: about {math.ceil(estimate / 60)} minutes; results in {args.out}"
    )
    work = Path(tempfile.mkdtemp(prefix="qd-bench."))
    by_size: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        for size in sizes:
            log(started, f"generating {size:,} services...")
            catalog = generate_catalog(work / f"catalog-{size}", **scale(size))
            records = deploys_for(size, sizes, args)
            with ExitStack() as stack:

                def one(
                    dialect: str, size: int = size, catalog: Catalog = catalog, records: int = records
                ) -> dict[str, Any]:
                    def progress(message: str) -> None:
                        log(started, f"{dialect} {size:,}: {message}")

                    folder = work / f"catalog-{size}-{dialect}"
                    shutil.copytree(work / f"catalog-{size}", folder)
                    url = database_url(stack, dialect, work)
                    try:
                        return run_one(dialect, url, catalog, folder, records, work, args, progress)
                    finally:
                        shutil.rmtree(folder, ignore_errors=True)

                results = run_dialects(
                    dialects, one, name="catalog", suffix=f"-{size}", out=args.out, show=False
                )
            by_size[size] = {r["dialect"]: r for r in results}
            shutil.rmtree(work / f"catalog-{size}", ignore_errors=True)
        if args.merge:
            dialects = merge_saved(by_size, args.out, dialects)
        save_markdown(args.out, "catalog.md", markdown(dict(sorted(by_size.items())), dialects, args))
        log(started, f"done (estimated {math.ceil(estimate / 60)} minutes)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
