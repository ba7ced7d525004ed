"""The `command` driver: each step runs the commands configured for it (helm, kubectl argo rollouts, a
script), with the step's values filled into each argument, a timeout, and the output in the step's log.

    driver: command
    config:
      set_traffic: [kubectl, argo, rollouts, set, weight, "{service}", "{weight}"]
      promote: [[kubectl, argo, rollouts, promote, "{service}"], [./notify.sh, "{version}"]]
      timeout_seconds: 120
      pass_env: [PATH, HOME, KUBECONFIG]

No shell is involved unless `shell: true` says so (the user's choice: then each command is one string
for /bin/sh -c, with every value shell-quoted). A command that exits non-zero or outlives its timeout
fails the step (a timed-out command's whole process group is killed).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from quarterdeck.deploys.drivers.base import (
    DriverConfigError,
    DriverContext,
    DriverError,
    DriverStatus,
    StepTarget,
    read_config,
)
from quarterdeck.deploys.drivers.keyed import KeyedDriver
from quarterdeck.deploys.drivers.placeholders import Template, parse, values_with_extras
from quarterdeck.deploys.drivers.steplog import StepLog

Method = Literal["prepare", "set_traffic", "promote", "rollback", "status"]
METHODS: tuple[Method, ...] = ("prepare", "set_traffic", "promote", "rollback", "status")
VARIABLES = (
    "service",
    "environment",
    "version",
    "image",
    "baseline_version",
    "weight",
    "instances",
    "idempotency_key",
)
STATUS_VARIABLES = tuple(name for name in VARIABLES if name not in ("weight", "idempotency_key"))
"""`status` changes nothing: it has no weight to set and no key."""
DEFAULT_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
LINGER_SECONDS = 1.0
"""How long output is still read after a command exits, for what it printed last."""
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

Commands = str | list[str] | list[list[str]] | None


class CommandConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prepare: Commands = None
    set_traffic: Commands = None
    promote: Commands = None
    rollback: Commands = None
    status: Commands = None
    shell: bool = Field(default=False, description="Run each command as one string through /bin/sh -c")
    timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    timeouts: dict[Method, float] = Field(default_factory=dict, description="Per-method timeouts")
    kill_grace_seconds: float = Field(default=5.0, ge=0, le=300)
    pass_env: list[str] = Field(default_factory=lambda: list(DEFAULT_PASS_ENV))
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @field_validator("pass_env")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "=" in name or "\x00" in name:
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @field_validator("timeouts")
    @classmethod
    def _positive(cls, value: dict[Method, float]) -> dict[Method, float]:
        for method, seconds in value.items():
            if not 0 < seconds <= 86_400:
                raise ValueError(f"{method}: {seconds} is not a timeout in seconds (0 to 86400)")
        return value


class CommandDriver(KeyedDriver):
    """Runs the configured commands of each method, one after the other; the first failure stops the step."""

    def __init__(
        self, context: DriverContext, config: CommandConfig, commands: dict[Method, list[list[Template]]]
    ) -> None:
        super().__init__(context)
        self.config = config
        self.commands = commands
        self.cwd = (context.base_dir / config.cwd) if config.cwd else context.base_dir

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: DriverContext) -> Self:
        checked = read_config(CommandConfig, config, context)
        commands: dict[Method, list[list[Template]]] = {}
        for method in METHODS:
            raw = getattr(checked, method)
            if raw is not None:
                known = STATUS_VARIABLES if method == "status" else VARIABLES
                commands[method] = _parse_commands(
                    raw, checked.shell, known, f"{context.where}, config.{method}"
                )
        if not commands:
            raise DriverConfigError(
                f"{context.where}: the command driver needs at least one command ({', '.join(METHODS)})",
                details=[{"field": "config", "where": context.where, "message": "no commands"}],
            )
        driver = cls(context, checked, commands)
        if not driver.cwd.is_dir():
            raise DriverConfigError(
                f"{context.where}, config.cwd: {driver.cwd} is not a folder",
                details=[{"field": "config.cwd", "where": context.where, "message": "not a folder"}],
            )
        return driver

    def apply_prepare(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None:
        self._run("prepare", _values(target, 0, idempotency_key), target, log)

    def apply_traffic(self, target: StepTarget, weight: int, idempotency_key: str, log: StepLog) -> None:
        self._run("set_traffic", _values(target, weight, idempotency_key), target, log)

    def apply_promote(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None:
        self._run("promote", _values(target, 100, idempotency_key), target, log)

    def apply_rollback(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None:
        self._run("rollback", _values(target, 0, idempotency_key), target, log)

    def status(self, target: StepTarget) -> DriverStatus:
        """The status commands' verdict: healthy when they all exit 0. The command driver cannot see
        traffic itself, so it reports no slots; their output is in the log."""
        log = StepLog()
        healthy: bool | None = None
        if "status" in self.commands:
            try:
                self._run("status", _values(target, None, None), target, log)
                healthy = True
            except DriverError as exc:
                if exc.code not in ("deploys.command_failed", "deploys.command_timeout"):
                    raise
                healthy = False
        else:
            log.add("no status command is configured")
        log.close()
        return DriverStatus(target.service, target.environment, (), healthy, log=log.lines())

    def _run(self, method: Method, values: dict[str, str | None], target: StepTarget, log: StepLog) -> None:
        commands = self.commands.get(method)
        if not commands:
            log.add(f"no {method} command is configured: nothing to run")
            return
        values = values_with_extras(values, target.variables)
        timeout = self.config.timeouts.get(method, self.config.timeout_seconds)
        env = self._environment(method, values)
        for number, templates in enumerate(commands, start=1):
            where = f"{self.context.where}, config.{method}" + (
                f"[{number - 1}]" if len(commands) > 1 else ""
            )
            if self.config.shell:
                line = templates[0].render(values, quote=True, where=where)
                argv = ["/bin/sh", "-c", line]
                log.add(f"$ {line}")
            else:
                argv = [template.render(values, where=where) for template in templates]
                log.add(f"$ {shlex.join(argv)}")
            code = run_captured(
                argv, env=env, cwd=self.cwd, timeout=timeout, grace=self.config.kill_grace_seconds, log=log
            )
            name = shlex.join(argv[2:3]) if self.config.shell else shlex.quote(argv[0])
            if code is None:
                raise DriverError(
                    f"{method} for {target.where}: `{_short(name)}` timed out after {timeout:g} s and its "
                    "process group was killed",
                    code="deploys.command_timeout",
                )
            if code != 0:
                last = next((line for line in reversed(log.tail(20)) if line.strip()), "")
                raise DriverError(
                    f"{method} for {target.where}: `{_short(name)}` exited with code {code}"
                    + (f": {_short(last, 200)}" if last and not last.startswith("$ ") else ""),
                    code="deploys.command_failed",
                )

    def _environment(self, method: Method, values: Mapping[str, str | None]) -> dict[str, str]:
        env = {name: os.environ[name] for name in self.config.pass_env if name in os.environ}
        env.update(self.config.env)
        env["QD_STEP"] = method
        for name in VARIABLES:
            value = values.get(name)
            if value is not None:
                env[f"QD_{name.upper()}"] = value
        return env


def _values(target: StepTarget, weight: int | None, key: str | None) -> dict[str, str | None]:
    return {
        "service": target.service,
        "environment": target.environment,
        "version": target.version,
        "image": target.image,
        "baseline_version": target.baseline_version,
        "weight": None if weight is None else str(weight),
        "instances": None if target.instances is None else str(target.instances),
        "idempotency_key": key,
    }


def _parse_commands(raw: Commands, shell: bool, known: tuple[str, ...], where: str) -> list[list[Template]]:
    """The method's commands, each a list of argument templates (one template: a shell line)."""
    if raw is None or raw == [] or raw == "":
        raise DriverConfigError(
            f"{where}: an empty command; leave the method out instead",
            details=[{"field": where, "message": "empty"}],
        )
    if shell:
        lines = [raw] if isinstance(raw, str) else raw
        if not all(isinstance(line, str) for line in lines):
            raise DriverConfigError(
                f"{where}: with shell: true, write each command as one string",
                details=[{"field": where, "message": "expected strings"}],
            )
        return [
            [parse(str(line), known, where=f"{where}[{i}]" if len(lines) > 1 else where)]
            for i, line in enumerate(lines)
        ]
    if isinstance(raw, str):
        raise DriverConfigError(
            f"{where}: {raw!r} is a string; write the command as a list of arguments, or set shell: true",
            details=[{"field": where, "message": "a string needs shell: true"}],
        )
    argvs: list[tuple[str, object]]
    if all(isinstance(arg, str) for arg in raw):
        argvs = [(where, raw)]
    else:
        argvs = [(f"{where}[{i}]", argv) for i, argv in enumerate(raw)]
    parsed = []
    for at, argv in argvs:
        if not isinstance(argv, list) or not argv or not all(isinstance(arg, str) for arg in argv):
            raise DriverConfigError(
                f"{at}: expected a non-empty list of arguments",
                details=[{"field": at, "message": "expected a list of strings"}],
            )
        parsed.append([parse(str(arg), known, where=f"{at}[{j}]") for j, arg in enumerate(argv)])
    return parsed


def run_captured(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float, grace: float, log: StepLog
) -> int | None:
    """Runs argv in a session of its own, its stdout and stderr interleaved into `log`. The exit code,
    or None when it outlived `timeout`: its process group was then sent SIGTERM, and SIGKILL if still
    there `grace` seconds later (said in the log)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise DriverError(
            f"command `{_short(argv[0])}` is not found (PATH: {env.get('PATH', '')})",
            code="deploys.command_failed",
        ) from None
    except PermissionError:
        raise DriverError(
            f"command `{_short(argv[0])}` may not be run: permission denied", code="deploys.command_failed"
        ) from None
    assert proc.stdout is not None
    started = time.monotonic()
    deadline = started + timeout
    timed_out = _pump(proc, proc.stdout.fileno(), deadline, log)
    proc.stdout.close()
    if not timed_out:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        log.close()
        log.add(f"[timed out after {timeout:g} s: sending SIGTERM to its process group {proc.pid}]")
        if not _signal_group(proc, signal.SIGTERM, grace):
            log.add(f"[still running {grace:g} s later: sending SIGKILL]")
        # SIGKILL either way: what the command started in the background may have outlived it.
        _signal_group(proc, signal.SIGKILL, None)
        log.add("[process group killed]")
        return None
    log.close()
    return proc.returncode


def _pump(proc: subprocess.Popen[bytes], fd: int, deadline: float, log: StepLog) -> bool:
    """Copies output into the log until it ends; True when the deadline came first."""
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if now >= deadline:
                return True
            wait = min(deadline - now, 0.2)
            if exited_at is not None:
                wait = min(wait, exited_at + LINGER_SECONDS - now)
                if wait <= 0:
                    log.close()
                    log.add("[the command exited; something it started still holds its output: not waiting]")
                    return False
            if selector.select(wait):
                data = os.read(fd, 65536)
                if not data:
                    return False
                log.write_bytes(data)
            if exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()


def _signal_group(proc: subprocess.Popen[bytes], signum: int, grace: float | None) -> bool:
    """Signals the process's whole group; True when the process was gone within `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        return False
    return True


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
