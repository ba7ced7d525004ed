"""A throw-away PostgreSQL cluster (initdb + pg_ctl in a temporary folder) for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        raise RuntimeError("PostgreSQL is not installed: run `make test-deps` (scripts/install-test-deps.sh)")
    return candidates[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(prefix + list(command), check=True, capture_output=True, cwd="/tmp")


@contextmanager
def postgres_cluster(*, durable: bool = False) -> Iterator[str]:
    """Start a cluster on a free port; yields `postgresql://postgres@127.0.0.1:PORT` (no database).

    Tests skip durability (fsync, synchronous commit, full page writes) for speed; benchmarks ask for
    `durable=True`, PostgreSQL's own defaults, so their figures are what an install gets."""
    pg_bin = postgres_bin()
    folder = tempfile.mkdtemp(prefix="qd-pg.")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = free_port()
    data = f"{folder}/data"
    _as_postgres(
        f"{pg_bin}/initdb",
        "-D",
        data,
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    )
    _as_postgres(
        f"{pg_bin}/pg_ctl",
        "-D",
        data,
        "-l",
        f"{folder}/server.log",
        "-w",
        "-t",
        "30",
        "-o",
        f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200"
        + ("" if durable else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"),
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        _as_postgres(f"{pg_bin}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
