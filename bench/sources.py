"""`python -m bench.sources`: git sources that stay in sync, at 10,000 services.

A git repository (file:// URL) of the synthetic company of bench/generate.py (10,000 services, 200
teams, 2,000 people, 100 systems: 12,300 descriptors) in two layouts: one file per team (203 files)
and one file per service (10,003 files). On SQLite and on PostgreSQL, each in a fresh database:
- the first import (`quarterdeck import URL`: every file read);
- an unchanged full re-import (what re-reading everything costs: every sync cost this before);
- the periodic sync job on the same commit (nothing read);
- the sync job after a commit that touches no descriptor (the blobs are compared, nothing read);
- the sync job after a commit changing one descriptor file (that file read).
Each sync is the whole job as a worker runs it (claim, fetch, compare, apply, schedule the next one),
timed from outside, with the duration the source records beside it; the median of `--runs` runs.
Target: an unchanged re-sync well under a second. Results: bench/results/sources-<dialect>.json and
bench/results/sources.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bench.generate import generate
from bench.report import RESULTS, database_url, machine, run_date, run_dialects, save_markdown
from quarterdeck.catalog import jobs as catalog_jobs
from quarterdeck.catalog.importer import import_source
from quarterdeck.catalog.models import CatalogSource
from quarterdeck.clock import FrozenClock, SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine
from quarterdeck.jobs import JobRegistry, Worker
from quarterdeck.migrations import upgrade
from quarterdeck.runtime import Runtime, running

TARGET_UNCHANGED_S = 1.0
INTERVAL = timedelta(seconds=300)


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)


def per_service(root: Path) -> None:
    """Split each team's services file into one file per service."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for team_file in sorted((root / "services").glob("*/quarterdeck.yaml")):
        for document in yaml.load_all(team_file.read_text(), Loader=loader):
            target = team_file.parent / document["slug"] / "quarterdeck.yaml"
            target.parent.mkdir()
            target.write_text(yaml.dump(document, Dumper=dumper, sort_keys=False, width=200))
        team_file.unlink()


def make_repository(folder: Path, layout: str, services: int) -> Path:
    generate(folder, services=services, teams=services // 50, people=services // 5, systems=services // 100)
    if layout == "per-service":
        per_service(folder)
    (folder / "README.md").write_text("The synthetic company's catalog.\n")
    git(folder, "init", "--quiet", "--initial-branch=main")
    commit(folder, "The synthetic company")
    return folder


def edit_one(repo: Path, run: int) -> str:
    """Change one descriptor file (a different one each run); its path."""
    files = sorted(repo.glob("services/**/quarterdeck.yaml"))
    target = files[(run * 37) % len(files)]
    target.write_text(target.read_text().replace("for the synthetic company", f"(edit {run})", 1))
    return target.relative_to(repo).as_posix()


class Syncer:
    """Runs the due periodic sync of the source, as a worker does, on a clock moved to its due time."""

    def __init__(self, runtime: Runtime, clock: FrozenClock, key: str) -> None:
        registry = JobRegistry()
        catalog_jobs.register_jobs(registry)
        self.worker = Worker(runtime.sessions, runtime.writers, registry, clock=clock, worker_id="bench")
        self.runtime, self.clock, self.key = runtime, clock, key

    def sync(self) -> dict[str, Any]:
        self.clock.at += INTERVAL
        started = time.perf_counter()
        ran = self.worker.run_due()
        elapsed = time.perf_counter() - started
        with self.runtime.sessions() as session:
            source = session.scalar(select(CatalogSource).where(CatalogSource.key == self.key))
            assert source is not None and ran == 1, (ran, source)
            assert source.last_sync_result == "ok", source.last_sync_error
            return {
                "job_s": elapsed,
                "recorded_ms": source.last_sync_duration_ms,
                "files_read": source.last_sync_files_read,
            }


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(samples),
        "job_s_median": round(statistics.median(s["job_s"] for s in samples), 3),
        "job_s_max": round(max(s["job_s"] for s in samples), 3),
        "recorded_ms_median": statistics.median(s["recorded_ms"] for s in samples),
        "files_read": sorted({s["files_read"] for s in samples}),
    }


def run_layout(url: str, repo: Path, work: Path, runs: int) -> dict[str, Any]:
    clock = FrozenClock(SystemClock().now())
    settings = Settings(database_url=url, git_cache_dir=work / f"git-{time.monotonic_ns()}")
    result: dict[str, Any] = {"files": len(list(repo.rglob("*.yaml")))}
    with running(settings, clock=clock) as runtime:
        started = time.perf_counter()
        first = import_source(runtime.sessions, repo.as_uri(), settings=settings, clock=clock)
        result["first_import_s"] = round(time.perf_counter() - started, 2)
        assert not first.errors, first.errors[:3]
        result["entities"] = first.entities
        started = time.perf_counter()
        again = import_source(runtime.sessions, repo.as_uri(), settings=settings, clock=clock)
        result["full_reimport_unchanged_s"] = round(time.perf_counter() - started, 2)
        assert again.unchanged == first.entities
        syncer = Syncer(runtime, clock, first.source)
        result["sync_same_commit"] = summary([syncer.sync() for _ in range(runs)])
        elsewhere = []
        for run in range(runs):
            (repo / "README.md").write_text(f"The synthetic company's catalog, take {run}.\n")
            commit(repo, f"README {run}")
            elsewhere.append(syncer.sync())
        result["sync_commit_elsewhere"] = summary(elsewhere)
        one_file = []
        for run in range(runs):
            edit_one(repo, run)
            commit(repo, f"Edit {run}")
            one_file.append(syncer.sync())
        result["sync_one_file_changed"] = summary(one_file)
    return result


def run_dialect(
    stack: ExitStack, dialect: str, repos: dict[str, Path], work: Path, runs: int
) -> dict[str, Any]:
    result: dict[str, Any] = {"dialect": dialect, "layouts": {}}
    for layout, repo in repos.items():
        url = database_url(stack, dialect, work)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        print(f"[bench] {dialect}, {layout}...", flush=True)
        result["layouts"][layout] = run_layout(url, repo, work, runs)
        print(json.dumps(result["layouts"][layout], indent=2), flush=True)
    return result


def markdown(results: list[dict[str, Any]], services: int) -> str:
    descriptors = services + services // 50 + services // 5 + services // 100
    lines = [
        "# Git sources: sync benchmark",
        "",
        f"Machine: {machine()}. Run {run_date()}. {services:,} services ({descriptors:,} descriptors) "
        f"in a git repository (file:// URL). Sync times are the whole job as a worker runs it (median; "
        f"the duration the source records in brackets). Target: unchanged re-sync < {TARGET_UNCHANGED_S} s.",
        "",
        "| dialect | layout | first import | full re-import, unchanged | sync, same commit "
        "| sync, commit elsewhere | sync, 1 file changed (files read) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for layout, x in r["layouts"].items():
            same, elsewhere, one = (
                x["sync_same_commit"],
                x["sync_commit_elsewhere"],
                x["sync_one_file_changed"],
            )
            lines.append(
                f"| {r['dialect']} | {layout} ({x['files']} files) | {x['first_import_s']} s "
                f"| {x['full_reimport_unchanged_s']} s "
                f"| {same['job_s_median']} s ({same['recorded_ms_median']} ms) "
                f"| {elsewhere['job_s_median']} s ({elsewhere['recorded_ms_median']} ms) "
                f"| {one['job_s_median']} s ({one['recorded_ms_median']} ms; {one['files_read']}) |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--layouts", default="per-team,per-service")
    parser.add_argument("--runs", type=int, default=5, help="syncs measured per case")
    parser.add_argument("--services", type=int, default=10_000, help="catalog size (teams, people scaled)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="qd-bench-sources."))
    try:
        with ExitStack() as stack:

            def one(dialect: str) -> dict[str, Any]:
                repos = {
                    layout: make_repository(work / f"repo-{dialect}-{layout}", layout, args.services)
                    for layout in args.layouts.split(",")
                }
                return run_dialect(stack, dialect, repos, work, args.runs)

            suffix = "" if args.services == 10_000 else f"-{args.services}"
            results = run_dialects(args.dialects.split(","), one, name="sources", suffix=suffix, show=False)
        save_markdown(RESULTS, f"sources{suffix}.md", markdown(results, args.services))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
