"""HAProxy as the local driver uses it: the configuration it writes, the haproxy process it starts and
reloads (as the current user, no systemd), and a client of HAProxy's Runtime API on the admin socket.

Runtime API (HAProxy 2.6 management guide, section 9.3, /usr/share/doc/haproxy/management.txt.gz): a
client connects to the stats socket, sends one command line, and reads the answer until HAProxy closes
the connection (non-interactive mode). The commands used here:

    set server <backend>/<server> weight <0-256>           -> empty on success
    set server <backend>/<server> state ready|maint|drain  -> empty on success
    set server <backend>/<server> addr <ip> port <port>    -> "...changed from..." or "no need to change..."
    show servers state <backend>  -> "1" (format version), a "# be_id be_name ..." header, a row per server
    get weight <backend>/<server>  -> "<current> (initial <initial>)"

Errors come back as text ("No such server.", "Can't find backend.") where success is empty or known.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from quarterdeck.deploys.drivers.base import DriverError

MISSING = "the local driver needs HAProxy: apt-get install haproxy (or `make run` as root installs it)"
"""The one line the local driver answers with when there is no haproxy to run."""
SERVERS = ("stable", "canary")
PLACEHOLDER_PORT = 1
"""Where an empty server slot points: it is in maintenance, so nothing is ever sent there."""
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
SOCKET_PATH_MAX = 107
"""sun_path is 108 bytes on Linux, with its terminating NUL."""

# Operational states of `show servers state` (srv_op_state) and the admin-state bits that mean the
# server takes no traffic (SRV_ADMF_FMAINT, _IMAINT, _RMAINT; CMAINT stays set after `state ready`
# on a server that was `disabled` in the configuration and does not stop traffic then).
OP_RUNNING = 2
ADMIN_MAINT = 0x01 | 0x02 | 0x20


@dataclass(frozen=True)
class ServerState:
    """One row of `show servers state`."""

    backend: str
    name: str
    address: str
    port: int
    op_state: int
    admin_state: int
    weight: int

    @property
    def up(self) -> bool:
        return self.op_state == OP_RUNNING and not self.admin_state & ADMIN_MAINT

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & ADMIN_MAINT)


@dataclass(frozen=True)
class ServerSlot:
    """What the configuration says of one server slot: where it points and its weight; None port is empty."""

    name: str
    port: int | None
    weight: int


@dataclass(frozen=True)
class BackendSpec:
    """One service in one environment as HAProxy serves it: a frontend and a backend of two slots."""

    name: str
    bind: str
    listen_port: int
    health_path: str
    slots: tuple[ServerSlot, ...]

    @property
    def structure(self) -> str:
        """What only a reload can change (the frontend, the health check), as opposed to weights and
        addresses, which the Runtime API changes in place."""
        return f"{self.name} {self.bind}:{self.listen_port} {self.health_path}"


class RuntimeApi:
    """HAProxy's Runtime API over its admin socket: one connection per command."""

    def __init__(self, socket_path: Path, *, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def send(self, command: str) -> str:
        if "\n" in command or ";" in command:
            raise ValueError(f"one Runtime API command at a time, without ; or line feeds: {command!r}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(str(self.socket_path))
                conn.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise DriverError(
                f"HAProxy's admin socket {self.socket_path} did not answer `{command}`: "
                f"{exc.strerror or exc}",
                code="deploys.haproxy_unavailable",
            ) from exc
        return b"".join(chunks).decode(errors="replace").strip()

    def _expect_empty(self, command: str) -> None:
        answer = self.send(command)
        if answer:
            raise DriverError(
                f"HAProxy refused `{command}`: {answer.splitlines()[0]}", code="deploys.haproxy_refused"
            )

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        if not 0 <= weight <= 256:
            raise ValueError(f"HAProxy weights are 0 to 256, not {weight}")
        self._expect_empty(f"set server {_checked(backend)}/{_checked(server)} weight {weight}")

    def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in ("ready", "drain", "maint"):
            raise ValueError(f"server state {state!r}: expected ready, drain or maint")
        self._expect_empty(f"set server {_checked(backend)}/{_checked(server)} state {state}")

    def set_address(self, backend: str, server: str, host: str, port: int) -> None:
        command = f"set server {_checked(backend)}/{_checked(server)} addr {_checked(host)} port {int(port)}"
        answer = self.send(command)
        if "changed" not in answer and "no need to change" not in answer:
            raise DriverError(
                f"HAProxy refused `{command}`: {answer.splitlines()[0] if answer else 'no answer'}",
                code="deploys.haproxy_refused",
            )

    def get_weight(self, backend: str, server: str) -> tuple[int, int]:
        """(current, initial) weight of a server."""
        command = f"get weight {_checked(backend)}/{_checked(server)}"
        answer = self.send(command)
        found = re.fullmatch(r"(\d+) \(initial (\d+)\)", answer)
        if not found:
            raise DriverError(
                f"HAProxy answered `{command}` with {answer[:100]!r}", code="deploys.haproxy_refused"
            )
        return int(found.group(1)), int(found.group(2))

    def servers(self, backend: str) -> dict[str, ServerState]:
        """The servers of `backend` by name, from `show servers state` (format version 1)."""
        command = f"show servers state {_checked(backend)}"
        lines = self.send(command).splitlines()
        if not lines or lines[0].strip() != "1" or len(lines) < 2 or not lines[1].startswith("# "):
            raise DriverError(
                f"HAProxy answered `{command}` with {(lines[0] if lines else '')[:100]!r}",
                code="deploys.haproxy_refused",
            )
        header = lines[1][2:].split()
        found = {}
        for line in lines[2:]:
            if not line.strip() or line.startswith("#"):
                continue
            row = dict(zip(header, line.split(), strict=False))
            state = ServerState(
                backend=row["be_name"],
                name=row["srv_name"],
                address=row["srv_addr"],
                port=int(row["srv_port"]),
                op_state=int(row["srv_op_state"]),
                admin_state=int(row["srv_admin_state"]),
                weight=int(row["srv_uweight"]),
            )
            found[state.name] = state
        return found


def render_config(backends: Sequence[BackendSpec], socket_path: Path) -> str:
    """The whole haproxy.cfg: the admin socket (level admin, handing its listeners to a reloaded
    process), then a frontend and a backend per service and environment."""
    lines = [
        "# Written by Quarterdeck's local deploy driver from state.json beside it; edits are overwritten.",
        "# Weights and server addresses change at run time through the admin socket (Runtime API).",
        "global",
        f"    stats socket {socket_path} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout check 2s",
    ]
    for spec in backends:
        lines += [
            "",
            f"frontend fe_{spec.name}",
            f"    bind {spec.bind}:{spec.listen_port}",
            f"    default_backend be_{spec.name}",
            "",
            f"backend be_{spec.name}",
            "    balance roundrobin",
            f"    option httpchk GET {spec.health_path}",
            "    default-server check inter 1s",
        ]
        for slot in spec.slots:
            where = f"127.0.0.1:{slot.port if slot.port is not None else PLACEHOLDER_PORT}"
            disabled = " disabled" if slot.port is None else ""
            lines.append(f"    server {slot.name} {where} weight {slot.weight}{disabled}")
    return "\n".join(lines) + "\n"


def structure_of(backends: Sequence[BackendSpec]) -> str:
    return hashlib.sha256("\n".join(sorted(spec.structure for spec in backends)).encode()).hexdigest()[:16]


class Haproxy:
    """The haproxy process of one state folder: haproxy.cfg, haproxy.pid, admin.sock, haproxy.log."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.config_path = folder / "haproxy.cfg"
        self.pid_path = folder / "haproxy.pid"
        self.socket_path = folder / "admin.sock"
        self.log_path = folder / "haproxy.log"

    def executable(self) -> str:
        """The haproxy binary to run; DriverError with the one-line install hint when there is none."""
        found = shutil.which(self.binary)
        if not found:
            raise DriverError(MISSING, code="deploys.haproxy_missing")
        return found

    def api(self) -> RuntimeApi:
        return RuntimeApi(self.socket_path)

    def running_pid(self) -> int | None:
        """The pid of the haproxy serving this folder's configuration, if one runs."""
        try:
            pid = int(self.pid_path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        if state in ("Z", "X") or str(self.config_path).encode() not in cmdline:
            return None
        return pid

    def apply(self, config: str, *, reload: bool) -> str | None:
        """Writes `config` and makes haproxy run it: started when none runs, reloaded (its listeners
        handed over through the admin socket, the old process finishing its requests) when `reload`.
        Says what it did, or None when haproxy ran already and needed no reload."""
        binary = self.executable()
        self.folder.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > SOCKET_PATH_MAX:
            raise DriverError(
                f"the local driver's state folder {self.folder} is too deep for HAProxy's admin socket "
                f"(at most {SOCKET_PATH_MAX - len('/admin.sock')} characters): set a shorter state_dir",
                code="deploys.driver_state",
            )
        write_atomically(self.config_path, config)
        pid = self.running_pid()
        if pid is not None and not reload:
            return None
        command = [binary, "-D", "-f", str(self.config_path), "-p", str(self.pid_path)]
        if pid is not None:
            command += ["-x", str(self.socket_path), "-sf", str(pid)]
        with open(self.log_path, "ab") as out:
            offset = out.tell()
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=False,
            )
        if done.returncode != 0:
            raise DriverError(
                f"haproxy would not {'reload' if pid else 'start'} with {self.config_path} (exit code "
                f"{done.returncode}): {first_alert(self.log_path, offset)}",
                code="deploys.haproxy_unavailable",
            )
        self._wait_answering(old_pid=pid)
        return (
            f"haproxy {'reloaded' if pid else 'started'} (pid {self.running_pid()}) with {self.config_path}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
        deadline = time.monotonic() + timeout
        while self.running_pid() == pid and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running_pid() == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)

    def _wait_answering(self, *, old_pid: int | None, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pid = self.running_pid()
            if pid is not None and pid != old_pid:
                with contextlib.suppress(DriverError):
                    self.api().send("show info")
                    return
            if time.monotonic() > deadline:
                raise DriverError(
                    f"haproxy did not answer on {self.socket_path} within {timeout:g} s: "
                    f"{last_line(self.log_path)}",
                    code="deploys.haproxy_unavailable",
                )
            time.sleep(0.05)


def write_atomically(path: Path, text: str) -> None:
    """Replaces the file whole, so a reader (or a crash) never sees half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def last_line(path: Path, *, lines: int = 1) -> str:
    """The last non-empty lines of a log file (up to its last 16 KiB), joined with ` | `."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    found = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(found[-lines:]) if found else "(the log is empty)"


def first_alert(path: Path, offset: int) -> str:
    """The first [ALERT] haproxy wrote to its log after `offset` (the cause: the last one only says
    it is exiting), else the last line it wrote."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read(65536).decode(errors="replace")
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    alert = next((line for line in lines if line.startswith("[ALERT]")), None)
    return alert or (lines[-1] if lines else "(nothing in its log)")


def _checked(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot be named in a Runtime API command")
    return name
