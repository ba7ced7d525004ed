"""What the benchmarks share: a fresh database per run, an admin token, a timed import, wrk with a Lua
request script, percentiles, the machine's description, and the loop over dialects that writes each
dialect's JSON result and the markdown summary."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker, transaction
from tests.pg_cluster import postgres_cluster
from tests.server_process import resident_kib

RESULTS = Path(__file__).parent / "results"
DIALECTS = ("sqlite", "postgresql")


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
    "  io.write(string.format('RESULT %d %d %d %d %d %d %f %f %f %f\\n', summary.requests,"
    " summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read,"
    " summary.errors.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),"
    " latency.max))\nend\n"
)
_RESULT = re.compile(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)")


def run_wrk(
    base: str, lua: str, *, seconds: int, connections: int, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run wrk (one thread) with a request script (`lua`, without its `done`): req/s, latency percentiles
    and errors. `errors` counts all of them; `non_2xx` is wrk's status errors (answers >= 400), `socket`
    its connect and read errors, `timeouts` requests unanswered within `timeout_s` (wrk's default 2 s
    when None), whose latency wrk does not record."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + WRK_DONE)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
    command += [f"--timeout={timeout_s:g}s"] if timeout_s else []
    try:
        done = subprocess.run(
            [*command, base], capture_output=True, text=True, timeout=seconds + 120, check=False
        )
    finally:
        os.unlink(script.name)
    match = _RESULT.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {(done.stderr or done.stdout)[-500:]}")
    requests, duration_us = int(match[1]), int(match[2])
    status, connect, read, timeouts = (int(match[n]) for n in (3, 4, 5, 6))
    return {
        "requests": requests,
        "errors": status + connect + read + timeouts,
        "non_2xx": status,
        "socket": connect + read,
        "timeouts": timeouts,
        "req_per_s": round(requests / (duration_us / 1e6), 1),
        "p50_ms": round(float(match[7]) / 1000, 2),
        "p95_ms": round(float(match[8]) / 1000, 2),
        "p99_ms": round(float(match[9]) / 1000, 2),
        "max_ms": round(float(match[10]) / 1000, 2),
    }


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run_date() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def dialects_of(choice: str) -> list[str]:
    """`both`, one dialect, or a comma-separated list."""
    return list(DIALECTS) if choice == "both" else [d for d in choice.split(",") if d]


def save_json(out: Path, filename: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / filename).write_text(json.dumps(result, indent=2) + "\n")


def save_markdown(out: Path, filename: str, text: str) -> None:
    """Write the summary and print it."""
    out.mkdir(parents=True, exist_ok=True)
    (out / filename).write_text(text)
    print(text)


def run_dialects(
    dialects: Iterable[str],
    run: Callable[[str], dict[str, Any]],
    *,
    name: str,
    suffix: str = "",
    out: Path = RESULTS,
    show: bool = True,
) -> list[dict[str, Any]]:
    """`run` each dialect in turn; print (when `show`) and save each result as
    `<name>-<dialect><suffix>.json` as soon as it is there, so a later failure keeps it."""
    results = []
    for dialect in dialects:
        result = run(dialect)
        if show:
            print(json.dumps(result, indent=2), flush=True)
        save_json(out, f"{name}-{dialect}{suffix}.json", result)
        results.append(result)
    return results


# ---------------------------------------------------------------- a server's memory


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    except OSError:
        return []
    return found


def _is_helper(pid: int) -> bool:
    """multiprocessing's resource tracker: a child of the server that serves no request."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


class WorkerMemory:
    """The peak resident memory of each of a server's worker processes (uvicorn's children; the server
    process itself when it has none, as with one worker), sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every = pid, every
        self.peaks_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def workers(self) -> list[int]:
        children = [pid for pid in _children(self.pid) if not _is_helper(pid)]
        return children or [self.pid]

    def sample(self) -> None:
        for pid in self.workers():
            try:
                self.peaks_kib[pid] = max(self.peaks_kib.get(pid, 0), resident_kib(pid))
            except (OSError, RuntimeError):
                continue  # the process ended between listing and reading

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def __enter__(self) -> WorkerMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    def peaks_mb(self) -> list[float]:
        return sorted((round(kib / 1024, 1) for kib in self.peaks_kib.values()), reverse=True)
