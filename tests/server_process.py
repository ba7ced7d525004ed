"""`quarterdeck serve` as a real process on a free port, with the server's own defaults, for tests and
benchmarks that must see what users get (the event loop, the thread pool, the connection pool)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import wait_until_serving
from tests.pg_cluster import free_port


def resident_kib(pid: int) -> int:
    """The resident memory of a process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def running_server(
    database_url: str,
    *,
    workers: int | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The process and its base URL; stopped (and waited for) on exit. Only QD_DATABASE_URL and `env`
    are set: every other setting is the server's default."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("QD_")}
    environment |= {"QD_DATABASE_URL": database_url, **(env or {})}
    command = [sys.executable, "-m", "quarterdeck", "serve", "--port", str(port)]
    command += ["--workers", str(workers)] if workers else []
    out = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, env=environment, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process)
        yield process, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()  # type: ignore[union-attr]
