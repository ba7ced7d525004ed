"""`quarterdeck serve` as a real process on a free port, with the server's own defaults, for tests and
benchmarks that must see what users get (the event loop, the thread pool, the connection pool)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quarterdeck.cli import usable_cores
from tests.helpers import wait_until, wait_until_serving
from tests.pg_cluster import free_port


def resident_kib(pid: int) -> int:
    """The resident memory of a process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


STARTED = b"Application startup complete."


@contextmanager
def running_server(
    database_url: str,
    *,
    workers: int | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The process and its base URL, once every worker process has started (the first to answer
    is not enough: a cold figure must not time the others' start-up); stopped (and waited for) on
    exit. Only QD_DATABASE_URL and `env` are set: every other setting is the server's default."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QD_")}
    environment |= {"QD_DATABASE_URL": database_url, **(env or {})}
    command = [sys.executable, "-m", "quarterdeck", "serve", "--port", str(port)]
    command += ["--workers", str(workers)] if workers else []
    with tempfile.TemporaryDirectory() as folder:
        log_path = log or Path(folder) / "server.log"
        out = log_path.open("wb")
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=out)
        base = f"http://127.0.0.1:{port}"
        expected = workers or usable_cores()
        try:
            wait_until_serving(base, process)
            wait_until(
                lambda: log_path.read_bytes().count(STARTED) >= expected,
                timeout=60,
                what=f"{expected} worker process(es) to start",
            )
            yield process, base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            out.close()
