"""The processes the local driver runs, one per version: started in a session of their own (so they
outlive the worker that started them), known again by pid and start time (so a reused pid is never
mistaken for them), health-checked over HTTP, and stopped by process group."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from quarterdeck.deploys.drivers.base import DriverError
from quarterdeck.deploys.drivers.haproxy import last_line


@dataclass(frozen=True)
class Running:
    """A process this driver started: its pid and its start time in clock ticks since boot."""

    pid: int
    started: int


def start_ticks(pid: int) -> int | None:
    """When `pid` started (field 22 of /proc/<pid>/stat), or None if it is gone or a zombie (reaped
    here when it is our child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return int(fields[19])


def is_running(process: Running) -> bool:
    return start_ticks(process.pid) == process.started


def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path) -> Running:
    """Starts argv detached from the caller's session, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            out.flush()
            # The Popen object is dropped on purpose: the process outlives this call, and the driver
            # object; it is found again by pid and start time.
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except FileNotFoundError:
        raise DriverError(
            f"command `{argv[0]}` is not found (cwd {cwd})", code="deploys.command_failed"
        ) from None
    except PermissionError:
        raise DriverError(
            f"command `{argv[0]}` may not be run: permission denied", code="deploys.command_failed"
        ) from None
    started = start_ticks(proc.pid)
    return Running(proc.pid, started if started is not None else -1)


def stop(process: Running, *, timeout: float) -> bool:
    """SIGTERM to the process's group, SIGKILL after `timeout` seconds; True when it was running."""
    if not is_running(process):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_running(process) and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def wait_healthy(
    process: Running, *, port: int, path: str, timeout: float, what: str, log_path: Path
) -> float:
    """Waits until http://127.0.0.1:<port><path> answers 200; the seconds it took. DriverError when the
    process exits first or `timeout` passes (with the last line of its log)."""
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer yet"
    while True:
        if not is_running(process):
            raise DriverError(
                f"{what} exited before {path} answered: {last_line(log_path, lines=3)}",
                code="deploys.version_failed",
            )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return time.monotonic() - started
                last = f"{path} answered {response.status}"
            finally:
                conn.close()
        except OSError as exc:
            last = f"{path}: {exc.strerror or exc}"
        if time.monotonic() > deadline:
            raise DriverError(
                f"{what} did not answer {path} with 200 within {timeout:g} s ({last})",
                code="deploys.version_failed",
            )
        time.sleep(0.1)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
