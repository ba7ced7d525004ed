"""`make bench` (rollouts part): 1,000 portal deploys in flight at once on PostgreSQL.

A throw-away PostgreSQL cluster (PostgreSQL's default durability) with a catalog of 1,100 services of
one team, 1.0.0 live and 2.0.0 released. `quarterdeck serve` runs cold with the server's defaults: one
process per core, each with its embedded job worker (1 thread, claiming 1 job at a time), which run
every rollout step. Deploys go through the `weights-file` driver (tests/fixtures/driver_plugin, the
worked example of docs/drivers.md), registered through the `quarterdeck.drivers` entry point of a
dist-info folder on PYTHONPATH: an in-process driver that writes a small JSON file per step, with
KeyedDriver's applied-key ledger (one fsync'd file per key). So what is measured is the orchestrator,
the job runner and the database, not a deploy tool's own time.

- Flight: 1,000 rollouts (one per service, environment `fleet`) are started in process over `--spread`
  seconds with the pipeline deploy 10 % -> wait 60 s -> deploy 25 % -> deploy 50 % -> wait 30 s ->
  deploy 100 %, so every one is in flight at once once the last has started. Step-scheduling latency:
  from a step becoming due (its rollout's start committed; the previous step's job completed; a
  wait's due time) to a worker claiming its job (with a batch of 1 the claim is the start), from the
  job runner's own event times. Worker CPU: user+sys of the server's worker processes (/proc), from
  the first start to the last rollout's end, per 1,000 steps.
- Pressing Deploy: `POST /api/v1/services/{slug}/rollouts` over HTTP (environment `press`, a one-step
  pipeline), one at a time, 100 on the idle server first, then 100 while the 1,000 are in flight; time
  from just before the POST to the first step starting (its `started_at`).
Targets: step-scheduling p99 < 1 s; first step < 1 s.
Results: bench/results/rollouts-postgresql.json and bench/results/rollouts.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.report import (
    RESULTS,
    WorkerMemory,
    admin_token,
    database_url,
    machine,
    percentile,
    run_date,
    run_dialects,
    save_markdown,
    timed_import,
)
from quarterdeck.access.schemas import Actor
from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker, retrying_on_race, transaction, writer_sessions
from quarterdeck.deploys import rollouts
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.pipelines import service as pipelines
from quarterdeck.deploys.pipelines.loading import pipeline_from_body
from quarterdeck.deploys.rollouts.models import Rollout, RolloutStep
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from quarterdeck.jobs.models import Job, JobEvent
from quarterdeck.migrations import upgrade
from tests.server_process import running_server

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "fixtures" / "driver_plugin"
TARGETS = {"scheduling_p99_s": 1.0, "first_step_p99_s": 1.0}
TEAM = "fleet-team"
FLEET, PRESS, BUILD = "fleet", "press", "build"


def flight_steps(wait: int) -> list[dict[str, Any]]:
    """The fleet's pipeline: its first wait outlasts the starts, so all are in flight at once."""
    return [
        {"deploy": {"weight": 10}},
        {"wait": {"duration": f"{wait}s"}},
        {"deploy": {"weight": 25}},
        {"deploy": {"weight": 50}},
        {"wait": {"duration": f"{wait // 2}s"}},
        {"deploy": {"weight": 100}},
    ]


PRESS_STEPS: list[dict[str, Any]] = [{"deploy": {"weight": 100}}]
CLOCK = SystemClock()
SYSTEM = Actor.system("bench")
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the organisation


def write_catalog(root: Path, services: int) -> list[str]:
    slugs = [f"svc-{n:04d}" for n in range(services)]
    team = {"apiVersion": "quarterdeck/v1", "kind": "Team", "slug": TEAM, "name": "Fleet Team"}
    documents = [team] + [
        {
            "apiVersion": "quarterdeck/v1",
            "kind": "Service",
            "slug": slug,
            "owner": TEAM,
            "tier": 3,
            "image": f"registry.bench.example/{slug}",
        }
        for slug in slugs
    ]
    (root / "quarterdeck.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return slugs


def setup(url: str, work: Path, services: int, wait: int) -> tuple[list[str], float]:
    """The catalog (imported), three environments, each service's 1.0.0 live in fleet and press and
    2.0.0 released (in build), the team's pipeline in fleet and in press; the slugs and import time."""
    folder = work / "catalog"
    folder.mkdir()
    slugs = write_catalog(folder, services)
    settings = Settings(database_url=url, git_cache_dir=work / "git")
    seconds, _ = timed_import(url, folder, settings)
    sessions = make_sessionmaker(make_engine(url))
    now = CLOCK.now()
    with transaction(sessions) as session:
        for position, env in enumerate((BUILD, FLEET, PRESS)):
            body = EnvironmentIn(name=env.title(), position=position, production=False)
            deploys.put_environment(session, SYSTEM, env, body, at=now)
    reports = [
        DeployReport.model_validate(
            {
                "id": f"seed:{slug}:{env}:{version}",
                "service": slug,
                "environment": env,
                "version": version,
                "image": f"registry.bench.example/{slug}:{version}",
                "status": "succeeded",
                "started_at": now,
                "finished_at": now,
            }
        )
        for slug in slugs
        for env, version in ((FLEET, "1.0.0"), (PRESS, "1.0.0"), (BUILD, "2.0.0"))
    ]
    for offset in range(0, len(reports), 1000):
        with transaction(sessions) as session:
            deploys.report(session, SYSTEM, reports[offset : offset + 1000], at=now)
    with transaction(sessions) as session:
        for env, name, steps in (
            (FLEET, "bench-flight", flight_steps(wait)),
            (PRESS, "bench-press", PRESS_STEPS),
        ):
            pipeline = pipeline_from_body({"name": name, "steps": steps})
            pipelines.apply_pipeline(session, SYSTEM, "team", TEAM, pipeline, environment=env, at=now)
    return slugs, seconds


def install_driver(work: Path) -> dict[str, str]:
    """The weights-file plugin as an installed package would be found (a dist-info folder with its entry
    point), the drivers file choosing it for every deploy: the server's environment."""
    site = work / "site"
    info = site / "qd_weights_file-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qd-weights-file\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[quarterdeck.drivers]\nweights-file = qd_weights_file:WeightsFileDriver\n"
    )
    drivers = work / "deploy-drivers.yaml"
    drivers.write_text("drivers:\n  - driver: weights-file\n    config: {folder: splits}\n")
    path = os.pathsep.join(p for p in (str(site), str(PLUGIN), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHONPATH": path,
        "QD_DEPLOY_DRIVERS": str(drivers),
        "QD_DEPLOY_STATE_DIR": str(work / "state"),
    }


# ---------------------------------------------------------------- running


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def start_flight(url: str, slugs: list[str], spread: float, threads: int) -> dict[int, datetime]:
    """Start a rollout of 2.0.0 in fleet for each service, evenly over `spread` seconds; each rollout's
    id and when its start was committed."""
    committed: dict[int, datetime] = {}
    lock = threading.Lock()
    began = time.monotonic()

    def run(share: list[tuple[int, str]]) -> None:
        writers = writer_sessions(make_sessionmaker(make_engine(url, pool_size=2)))
        with writers() as session:
            for n, slug in share:
                time.sleep(max(0.0, began + n * spread / len(slugs) - time.monotonic()))
                rollout = retrying_on_race(
                    session,
                    lambda slug=slug: rollouts.start_rollout(  # type: ignore[misc]
                        session, SYSTEM, slug, "2.0.0", FLEET, at=CLOCK.now()
                    ),
                )
                with lock:
                    committed[rollout.id] = CLOCK.now()

    numbered = list(enumerate(slugs))
    workers = [threading.Thread(target=run, args=(numbered[i::threads],)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return committed


def press(base: str, token: str, slugs: list[str]) -> list[tuple[int, datetime, float]]:
    """Press Deploy for each service over HTTP, one at a time: (rollout id, pressed at, POST seconds)."""
    pressed = []
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for slug in slugs:
            at, t0 = CLOCK.now(), time.perf_counter()
            response = client.post(
                f"/api/v1/services/{slug}/rollouts", json={"version": "2.0.0", "environment": PRESS}
            )
            seconds = time.perf_counter() - t0
            assert response.status_code == 201, response.text[:300]
            pressed.append((int(response.json()["id"]), at, seconds))
            time.sleep(0.1)
    return pressed


def first_steps(sessions: sessionmaker[Session], pressed: list[tuple[int, datetime, float]]) -> list[float]:
    """Seconds from pressing Deploy to the first step starting, waiting for the last to start."""
    ids = [rollout_id for rollout_id, _, _ in pressed]
    query = select(RolloutStep.rollout_id, RolloutStep.started_at).where(
        RolloutStep.rollout_id.in_(ids), RolloutStep.position == 0
    )
    deadline = time.monotonic() + 120
    while True:
        with sessions() as session:
            started = {rollout_id: at for rollout_id, at in session.execute(query) if at is not None}
        if len(started) == len(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(started) == len(ids), f"{len(ids) - len(started)} first steps never started"
    return [(started[rollout_id] - at).total_seconds() for rollout_id, at, _ in pressed]


def in_flight(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(started and not finished, finished) among the fleet's rollouts."""
    with sessions() as session:
        rows = session.execute(
            select(Rollout.finished_at.is_(None), func.count())
            .where(Rollout.environment == FLEET)
            .group_by(Rollout.finished_at.is_(None))
        ).all()
    counts = {bool(running): count for running, count in rows}
    return counts.get(True, 0), counts.get(False, 0)


def scheduling(sessions: sessionmaker[Session], committed: dict[int, datetime]) -> dict[str, list[float]]:
    """Seconds from each fleet step becoming due to its job's claim, by how it became due: `start` (the
    rollout's start committed), `next` (the previous step's job completed), `wait` (a wait's due time)."""
    with sessions() as session:
        rows = session.execute(
            select(Job.id, Job.payload, Job.due_at, JobEvent.reason, JobEvent.at)
            .join(JobEvent, JobEvent.job_id == Job.id)
            .where(Job.kind == rollouts.JOB_KIND)
            .order_by(JobEvent.id)
        ).all()
    events: defaultdict[tuple[int, int], list[tuple[str, datetime]]] = defaultdict(list)
    due: dict[tuple[int, int], datetime] = {}
    for _job_id, payload, due_at, reason, at in rows:
        key = (payload["rollout_id"], payload["step"])
        if key[0] in committed:
            events[key].append((reason, at))
            due[key] = due_at
    latencies: dict[str, list[float]] = {"start": [], "next": [], "wait": []}
    for (rollout_id, step), moves in events.items():
        claims = [at for reason, at in moves if reason == "claimed"]
        if step == 0:
            became_due, kind = committed[rollout_id], "start"
        else:
            previous = events[(rollout_id, step - 1)]
            became_due, kind = next(at for reason, at in previous if reason == "succeeded"), "next"
        latencies[kind].append((claims[0] - became_due).total_seconds())
        if len(claims) > 1:  # a wait: claimed again when due
            latencies["wait"].append((claims[1] - due[(rollout_id, step)]).total_seconds())
    return latencies


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_s": round(percentile(samples, 50), 4),
        "p99_s": round(percentile(samples, 99), 4),
        "max_s": round(max(samples), 4),
    }


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def others_running() -> int:
    """Test or benchmark processes of other sessions on the machine (pytest), which share its cores."""
    found = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                found += b"pytest" in (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    others_at_start = others_running()
    with ExitStack() as stack:
        url = database_url(stack, "postgresql", work)
        upgrade(make_engine(url))
        slugs, import_seconds = setup(url, work, args.deploys + 2 * args.presses, args.wait)
        token = admin_token(url)
        sessions = make_sessionmaker(make_engine(url))
        env = install_driver(work)
        _process, base = stack.enter_context(running_server(url, env=env, log=work / "server.log"))
        workers = WorkerMemory(_process.pid).workers()
        flight, pressers = slugs[: args.deploys], slugs[args.deploys :]
        idle_pressed = press(base, token, pressers[: args.presses])
        idle_first = first_steps(sessions, idle_pressed)

        cpu_before, began = cpu_seconds(workers), time.monotonic()
        committed: dict[int, datetime] = {}
        starter = threading.Thread(
            target=lambda: committed.update(start_flight(url, flight, args.spread, args.threads))
        )
        starter.start()
        starter.join()
        all_started = time.monotonic() - began
        peak, _ = in_flight(sessions)
        busy_pressed = press(base, token, pressers[args.presses :])
        busy_first = first_steps(sessions, busy_pressed)
        wait_for(lambda: in_flight(sessions)[1] == len(committed), 600, "every rollout")
        elapsed, cpu = time.monotonic() - began, cpu_seconds(workers) - cpu_before

        with sessions() as session:
            states = dict(
                session.execute(
                    select(Rollout.state, func.count())
                    .where(Rollout.environment == FLEET)
                    .group_by(Rollout.state)
                ).all()
            )
            steps = session.scalar(
                select(func.count())
                .select_from(RolloutStep)
                .join(Rollout)
                .where(Rollout.environment == FLEET)
            )
        latencies = scheduling(sessions, committed)
        every = [x for samples in latencies.values() for x in samples]
        job_runs = len(latencies["start"]) + len(latencies["next"]) + len(latencies["wait"])
        press_steps = 2 * args.presses
    return {
        "dialect": "postgresql",
        "deploys": args.deploys,
        "pipeline": [next(iter(step.items())) for step in flight_steps(args.wait)],
        "started_over_s": round(all_started, 1),
        "in_flight_when_all_started": peak,
        "finished_states": states,
        "seconds_to_finish_all": round(elapsed, 1),
        "server_processes": len(workers),
        "import_seconds": round(import_seconds, 1),
        "scheduling": summary(every) | {kind: summary(samples) for kind, samples in latencies.items()},
        "worker_cpu": {
            "cpu_s": round(cpu, 1),
            "steps": steps,
            "job_runs": job_runs,
            "press_steps_included": press_steps,
            "cpu_s_per_1000_steps": round(1000 * cpu / ((steps or 0) + press_steps), 2),
            "cpu_s_per_1000_job_runs": round(1000 * cpu / (job_runs + press_steps), 2),
        },
        "first_step_idle": summary(idle_first)
        | {"post_p50_s": round(percentile([s for _, _, s in idle_pressed], 50), 4)},
        "first_step_in_flight": summary(busy_first)
        | {"post_p50_s": round(percentile([s for _, _, s in busy_pressed], 50), 4)},
        "other_test_processes_at_start": others_at_start,
        "other_test_processes_at_end": others_running(),
    }


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "missed"


def markdown(r: dict[str, Any]) -> str:
    s, cpu = r["scheduling"], r["worker_cpu"]
    idle, busy = r["first_step_idle"], r["first_step_in_flight"]
    pipeline = " -> ".join(f"{kind} {next(iter(spec.values()))}" for kind, spec in r["pipeline"])
    shared = (
        f"Other test runs were on the machine ({r['other_test_processes_at_start']} pytest process(es) at "
        f"the start, {r['other_test_processes_at_end']} at the end): they shared its cores."
        if r["other_test_processes_at_start"] or r["other_test_processes_at_end"]
        else "Nothing else ran on the machine."
    )
    lines = [
        "# Rollouts benchmark: 1,000 deploys in flight",
        "",
        f"Machine: {machine()}. Run {run_date()}. {shared} PostgreSQL is a throw-away local cluster with "
        "its default durability. `quarterdeck serve` started cold with the server's defaults: "
        f"{r['server_processes']} processes (one per core), each running its embedded job worker (1 thread, "
        "claiming 1 job at a time); nothing else ran the jobs. Driver: `weights-file` (the plugin example "
        "of docs/drivers.md, found through its `quarterdeck.drivers` entry point): each deploy step writes "
        "a small JSON file and records its idempotency key in KeyedDriver's ledger (a file, fsync'd). A "
        "real driver's own time (helm, kubectl) would come on top of the step's run, not of its scheduling.",
        "",
        f"{r['deploys']:,} rollouts (one per service) were started in process over {r['started_over_s']} s "
        f"with the pipeline {pipeline}; {r['in_flight_when_all_started']:,} were in flight when the last "
        f"had started, and all ended in {r['seconds_to_finish_all']} s: {r['finished_states']}.",
        "",
        "| measure | p50 | p99 | max | target |",
        "|---|---|---|---|---|",
        f"| step scheduling, every step ({s['n']:,}) | {s['p50_s']} s | {s['p99_s']} s | {s['max_s']} s | "
        f"p99 < {TARGETS['scheduling_p99_s']:g} s: **{verdict(s['p99_s'], TARGETS['scheduling_p99_s'])}** |",
    ]
    for kind, words in (
        ("start", "first step, from the start committed"),
        ("next", "next step, from the previous step's job completed"),
        ("wait", "end of a wait, from its due time"),
    ):
        k = s[kind]
        lines.append(f"| {words} ({k['n']:,}) | {k['p50_s']} s | {k['p99_s']} s | {k['max_s']} s | |")
    for label, f in (("on the idle server", idle), (f"with the {r['deploys']:,} in flight", busy)):
        lines.append(
            f"| pressing Deploy to the first step starting, {label} ({f['n']}) | {f['p50_s']} s | "
            f"{f['p99_s']} s | {f['max_s']} s | < {TARGETS['first_step_p99_s']:g} s: "
            f"**{verdict(f['p99_s'], TARGETS['first_step_p99_s'])}** (p99) |"
        )
    lines += [
        "",
        f"Worker CPU: {cpu['cpu_s']} s user+sys of the server's processes from the first start to the "
        f"last end, for {cpu['steps']:,} rollout steps ({cpu['job_runs']:,} step job runs: a wait runs "
        f"twice) plus the {cpu['press_steps_included']} pressed deploys and their one step: "
        f"**{cpu['cpu_s_per_1000_steps']} s per 1,000 steps** ({cpu['cpu_s_per_1000_job_runs']} s per "
        "1,000 job runs). It includes the "
        "HTTP requests of the pressed deploys and the idle workers' polling.",
        "",
        "How measured: scheduling latency from the job runner's own event times (job_events): a step's job "
        "is claimed by a worker, which with a batch of 1 starts it at once; it became due when the "
        "transaction that made it was committed (the rollout's start, the previous step's job completion) "
        "or, for the second run of a wait, at its due time. Pressing Deploy: from just before the POST "
        f"(one at a time, 100 ms apart; the POST itself took {idle['post_p50_s']} s p50 idle, "
        f"{busy['post_p50_s']} s in flight) to the first step's `started_at`, when its handler began.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deploys", type=int, default=1000, help="rollouts in flight at once")
    parser.add_argument(
        "--presses", type=int, default=100, help="Deploy presses over HTTP, idle and in flight"
    )
    parser.add_argument("--spread", type=float, default=30.0, help="seconds the rollouts are started over")
    parser.add_argument("--threads", type=int, default=2, help="threads starting the rollouts")
    parser.add_argument(
        "--wait", type=int, default=60, help="seconds of the pipeline's first wait (then half)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        [result] = run_dialects(
            ["postgresql"], lambda _: run(args, Path(folder)), name="rollouts", out=args.out
        )
    save_markdown(args.out, "rollouts.md", markdown(result))


if __name__ == "__main__":
    main()
