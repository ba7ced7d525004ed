"""The `local` driver: runs a service's versions as processes on this machine behind HAProxy, so the
example organisation can be deployed for real (`make run`, the tests).

    driver: local
    config:
      command: ["{python}", runnable/hello_service.py, --port, "{port}", --version, "{version}"]
      health_path: /health
      listen_port: 18080        # HAProxy's frontend for this service and environment

For each service and environment HAProxy has a frontend and a backend with two server slots, `stable`
(the baseline) and `canary` (the version being deployed). `prepare` starts the new version on a free
port, waits until its health path answers 200 and puts it in the canary slot with weight 0;
`set_traffic` changes the two weights through HAProxy's Runtime API; `promote` moves the new version
into the stable slot with all the traffic and stops the old one; `rollback` gives the baseline all the
traffic again (starting it if it does not run) and stops the new version.

The driver writes haproxy.cfg itself and runs haproxy as the current user (no systemd). Everything it
runs and every key it applied is in its state folder, and prometheus-targets.json there lists the
version processes for a Prometheus to scrape (file_sd_configs) (QD_DEPLOY_STATE_DIR/local unless `state_dir`
says otherwise); operations take turns on a lock there, so drivers in several worker processes, or a
new one after a crash, carry on from the same state.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from quarterdeck.deploys.drivers.base import (
    DriverContext,
    DriverError,
    DriverStatus,
    SlotStatus,
    StepTarget,
    read_config,
)
from quarterdeck.deploys.drivers.haproxy import (
    Haproxy,
    ServerState,
    render_config,
    structure_of,
    write_atomically,
)
from quarterdeck.deploys.drivers.keyed import KeyedDriver
from quarterdeck.deploys.drivers.ledger import KeyLedger
from quarterdeck.deploys.drivers.local_state import (
    TARGETS_FILE,
    LocalState,
    ServiceState,
    VersionRun,
    backend_name,
    write_scrape_targets,
)
from quarterdeck.deploys.drivers.placeholders import Template, parse
from quarterdeck.deploys.drivers.processes import free_port, is_running, spawn, stop, wait_healthy
from quarterdeck.deploys.drivers.steplog import StepLog

VARIABLES = ("port", "version", "service", "environment", "image", "python")
DEFAULT_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
UP_TIMEOUT_SECONDS = 10.0


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] = Field(
        min_length=1, description="argv of one version's process: {port} {version} ..."
    )
    cwd: str | None = Field(default=None, description="relative to the drivers file's folder")
    env: dict[str, str] = Field(default_factory=dict)
    pass_env: list[str] = Field(default_factory=lambda: list(DEFAULT_PASS_ENV))
    health_path: str = Field(default="/health", pattern=r"^/[A-Za-z0-9._~/?=&%-]*$", max_length=200)
    start_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    stop_timeout_seconds: float = Field(default=10.0, ge=0, le=300)
    listen_port: int | None = Field(default=None, ge=1, le=65535)
    bind: str = Field(default="127.0.0.1", pattern=r"^[0-9a-fA-F.:]+$")
    haproxy: str = Field(default="haproxy", min_length=1, description="the haproxy binary, looked up in PATH")
    state_dir: str | None = Field(default=None, description="default: QD_DEPLOY_STATE_DIR/local")


class LocalDriver(KeyedDriver):
    def __init__(
        self, context: DriverContext, config: LocalConfig, command: list[Template], state_dir: Path
    ) -> None:
        super().__init__(context, ledger=KeyLedger(state_dir / "keys"))
        self.config = config
        self.command = command
        self.state_dir = state_dir
        self.state_path = state_dir / "state.json"
        self.targets_path = state_dir / TARGETS_FILE
        """Prometheus file_sd targets: every version process, rewritten with the state."""
        self.haproxy = Haproxy(config.haproxy, state_dir)
        self.cwd = (context.base_dir / config.cwd) if config.cwd else context.base_dir

    @classmethod
    def from_config(cls, config: Mapping[str, Any], context: DriverContext) -> Self:
        checked = read_config(LocalConfig, config, context)
        command = [
            parse(arg, VARIABLES, where=f"{context.where}, config.command[{i}]")
            for i, arg in enumerate(checked.command)
        ]
        state_dir = (context.base_dir / checked.state_dir) if checked.state_dir else context.state_dir
        return cls(context, checked, command, state_dir)

    # ------------------------------------------------------------------ steps

    def apply_prepare(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None:
        with self._operation(target, log) as op:
            svc, version, baseline = op.svc, target.version, target.baseline_version
            if target.instances is not None:
                log.add(
                    f"instances {target.instances} ignored: the local driver runs one process per version"
                )
            if svc.stable == version:
                log.add(f"{version} is already the stable version of {svc.service} in {svc.environment}")
                return
            if svc.stable is None and baseline and baseline != version:
                log.add(f"the baseline {baseline} does not run: starting it first")
                op.point("stable", op.start(baseline))
                op.weigh(stable=100, canary=0)
            elif svc.stable and baseline and svc.stable != baseline:
                log.add(f"{svc.stable} runs as the stable version, not the baseline {baseline}: keeping it")
            if svc.canary is not None and svc.canary != version:
                log.add(f"retiring the canary {svc.canary} an earlier deploy left")
                op.weigh(stable=100 if svc.stable else 0, canary=0)
                op.empty("canary")
            run = op.start(version)
            op.weigh(stable=100 if svc.stable else 0, canary=0)
            if svc.canary != version:
                op.point("canary", run)
            op.retire_others(keep={svc.stable, version})
            log.add(
                f"{version} is up next to {svc.stable or 'nothing'} and takes no traffic yet ({svc.address})"
            )

    def apply_traffic(self, target: StepTarget, weight: int, idempotency_key: str, log: StepLog) -> None:
        with self._operation(target, log) as op:
            svc, version = op.svc, target.version
            if svc.canary != version:
                if svc.stable == version:
                    log.add(f"{version} is the stable version already: it takes all the traffic")
                    return
                raise DriverError(
                    f"{target.where} is not the canary (that is {svc.canary or 'none'}): prepare it first",
                    code="deploys.not_prepared",
                )
            if svc.stable is None:
                log.add("no stable version runs: the canary takes all the traffic whatever its weight")
                op.weigh(stable=0, canary=max(weight, 1))
            else:
                op.weigh(stable=100 - weight, canary=weight)
            log.add(f"{version} takes {weight} % of the traffic, {svc.stable or 'nothing'} {100 - weight} %")

    def apply_promote(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None:
        with self._operation(target, log) as op:
            svc, version = op.svc, target.version
            if svc.stable == version and svc.canary is None:
                log.add(f"{version} is the stable version already, with all the traffic")
                return
            run = svc.processes.get(version)
            if run is None or version not in (svc.stable, svc.canary):
                raise DriverError(
                    f"{target.where} does not run: prepare it first", code="deploys.not_prepared"
                )
            op.take_over(run)
            log.add(f"{version} is the stable version with 100 % of the traffic ({svc.address})")

    def apply_rollback(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None:
        with self._operation(target, log) as op:
            svc, version, baseline = op.svc, target.version, target.baseline_version
            if version not in svc.processes:
                log.add(f"{version} does not run: nothing to retire")
            back: VersionRun | None = None
            if svc.stable and svc.stable != version:
                back = svc.processes[svc.stable]
            elif baseline and baseline != version:
                back = op.start(baseline)
            if back is not None:
                op.take_over(back)
                log.add(f"{back.version} has 100 % of the traffic again; {version} is stopped")
                return
            log.add(f"no baseline to return to: {svc.service} runs no version in {svc.environment} now")
            for slot in ("canary", "stable"):
                if svc.slots[slot] is not None:
                    op.empty(slot)
            op.retire_others(keep=set())

    def status(self, target: StepTarget) -> DriverStatus:
        """What runs for the target's service and environment, from the state and HAProxy's own view
        (weights as shares of the traffic, a slot healthy when its process runs and HAProxy has it up)."""
        self.haproxy.executable()
        state = LocalState.load(self.state_path)
        svc = state.services.get(LocalState.key(target.service, target.environment))
        if svc is None:
            return DriverStatus(
                target.service, target.environment, (), None, log=("the local driver runs nothing for it",)
            )
        servers: dict[str, ServerState] = {}
        log = []
        if self.haproxy.running_pid() is None:
            log.append("haproxy is not running")
        else:
            try:
                servers = self.haproxy.api().servers(svc.backend)
            except DriverError as exc:
                log.append(exc.message)
        serving = {
            slot: servers[slot].weight
            for slot, version in svc.slots.items()
            if version and slot in servers and servers[slot].up
        }
        total = sum(serving.values())
        slots = []
        for slot, version in svc.slots.items():
            if version is None:
                continue
            run = svc.processes.get(version)
            alive = run is not None and is_running(run.process)
            weight = round(serving[slot] * 100 / total) if slot in serving and total else 0
            slots.append(
                SlotStatus(
                    role=slot,
                    version=version,
                    weight=weight if servers else None,
                    healthy=alive and slot in serving,
                    instances=1 if alive else 0,
                    address=f"127.0.0.1:{run.port}" if run else None,
                )
            )
        healthy = bool(servers) and all(s.healthy for s in slots if s.weight)
        return DriverStatus(svc.service, svc.environment, tuple(slots), healthy, svc.address, tuple(log))

    def stop_everything(self) -> None:
        """Stops every process this state folder knows and its haproxy, and forgets them (the end of
        `make run`, test clean-up). Applied keys are kept."""
        if not self.state_dir.exists():
            return
        with self._locked():
            state = LocalState.load(self.state_path)
            for svc in state.services.values():
                for run in svc.processes.values():
                    stop(run.process, timeout=self.config.stop_timeout_seconds)
            self.haproxy.stop()
            LocalState().save(self.state_path)
            write_scrape_targets(LocalState(), self.targets_path)
            write_atomically(self.haproxy.config_path, render_config([], self.haproxy.socket_path))

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "state.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _operation(self, target: StepTarget, log: StepLog) -> Iterator[_Operation]:
        self.haproxy.executable()
        with self._locked():
            state = LocalState.load(self.state_path)
            op = _Operation(self, state, self._service(state, target), target, log)
            try:
                op.ensure_haproxy()
                op.revive()
                yield op
            finally:
                op.save()

    def _service(self, state: LocalState, target: StepTarget) -> ServiceState:
        key = LocalState.key(target.service, target.environment)
        svc = state.services.get(key)
        wanted_port = self.config.listen_port
        taken = {s.listen_port: k for k, s in state.services.items() if k != key}
        if wanted_port is not None and wanted_port in taken:
            raise DriverError(
                f"listen port {wanted_port} for {target.service} in {target.environment} is already the "
                f"frontend of {taken[wanted_port]}",
                code="deploys.port_taken",
            )
        if svc is None:
            port = wanted_port or free_port(self.config.bind)
            svc = ServiceState(
                target.service,
                target.environment,
                backend_name(target.service, target.environment),
                self.config.bind,
                port,
                self.config.health_path,
            )
            state.services[key] = svc
        elif wanted_port is not None:
            svc.listen_port = wanted_port
        svc.bind, svc.health_path = self.config.bind, self.config.health_path
        return svc

    def argv(self, target: StepTarget, version: str, port: int) -> list[str]:
        values: dict[str, str | None] = {
            "port": str(port),
            "version": version,
            "service": target.service,
            "environment": target.environment,
            "image": target.image,
            "python": sys.executable,
        }
        return [t.render(values, where=f"{self.context.where}, config.command") for t in self.command]

    def environment(self, target: StepTarget, version: str, port: int) -> dict[str, str]:
        env = {name: os.environ[name] for name in self.config.pass_env if name in os.environ}
        env.update(self.config.env)
        env.update(
            {
                "PORT": str(port),
                "QD_SERVICE": target.service,
                "QD_ENVIRONMENT": target.environment,
                "QD_VERSION": version,
            }
        )
        return env


class _Operation:
    """One step of the local driver under the state lock: the primitives it is made of, each saving the
    state once it has changed HAProxy or a process, so a crash leaves the truth behind."""

    def __init__(
        self, driver: LocalDriver, state: LocalState, svc: ServiceState, target: StepTarget, log: StepLog
    ) -> None:
        self.driver = driver
        self.state = state
        self.svc = svc
        self.target = target
        self.log = log
        self.api = driver.haproxy.api()

    def save(self) -> None:
        """The state, and haproxy.cfg and the Prometheus targets to match it: a haproxy started from it
        serves what runs now, and a Prometheus reading the targets scrapes it."""
        self.state.save(self.driver.state_path)
        write_scrape_targets(self.state, self.driver.targets_path)
        specs = [svc.spec() for svc in self.state.services.values()]
        write_atomically(
            self.driver.haproxy.config_path, render_config(specs, self.driver.haproxy.socket_path)
        )

    def ensure_haproxy(self) -> None:
        specs = [svc.spec() for svc in self.state.services.values()]
        structure = structure_of(specs)
        config = render_config(specs, self.driver.haproxy.socket_path)
        done = self.driver.haproxy.apply(config, reload=structure != self.state.structure)
        self.state.structure = structure
        self.state.save(self.driver.state_path)
        if done:
            self.log.add(done)

    def revive(self) -> None:
        """Starts again a version a slot sends to whose process is gone (a reboot, a crash)."""
        for slot, version in self.svc.slots.items():
            run = self.svc.processes.get(version) if version else None
            if version and (run is None or not is_running(run.process)):
                self.log.add(f"{version} ({slot}) is not running: starting it again")
                self.svc.processes.pop(version, None)
                self.point(slot, self.start(version))

    def start(self, version: str) -> VersionRun:
        """The running process of `version`: the one already there (left by a crashed worker too), or a
        new one on a free port once its health path answers 200."""
        svc, config = self.svc, self.driver.config
        what = f"{svc.service} {version}"
        log_path = (
            self.driver.state_dir / "logs" / f"{svc.name}-{re.sub(r'[^A-Za-z0-9_.-]', '_', version)}.log"
        )
        run = svc.processes.get(version)
        if run is not None and is_running(run.process):
            self.log.add(f"{what} runs already (pid {run.pid}, port {run.port})")
        else:
            port = free_port()
            argv = self.driver.argv(self.target, version, port)
            process = spawn(
                argv,
                cwd=self.driver.cwd,
                env=self.driver.environment(self.target, version, port),
                log_path=log_path,
            )
            run = VersionRun(version, port, process.pid, process.started)
            svc.processes[version] = run
            self.save()
            self.log.add(f"started {what} (pid {run.pid}, port {port}): {' '.join(argv)}")
        try:
            took = wait_healthy(
                run.process,
                port=run.port,
                path=svc.health_path,
                timeout=config.start_timeout_seconds,
                what=what,
                log_path=log_path,
            )
        except DriverError:
            stop(run.process, timeout=config.stop_timeout_seconds)
            svc.processes.pop(version, None)
            self.save()
            raise
        self.log.add(f"{what} answers {svc.health_path} (after {took:.1f} s)")
        return run

    def point(self, slot: str, run: VersionRun) -> None:
        """Sends the slot to the process (its weight unchanged) and waits until HAProxy has it up."""
        backend = self.svc.backend
        self.api.set_address(backend, slot, "127.0.0.1", run.port)
        self.api.set_state(backend, slot, "ready")
        self.svc.slots[slot] = run.version
        self.save()
        self._wait_up(slot)
        self.log.add(f"HAProxy {backend}/{slot} -> {run.version} at 127.0.0.1:{run.port}")

    def weigh(self, *, stable: int, canary: int) -> None:
        """Sets both weights, the rising one first, so no moment has both at zero."""
        wanted = {"stable": stable, "canary": canary}
        order = sorted(wanted, key=lambda slot: wanted[slot] <= self.svc.weights[slot])
        for slot in order:
            self.api.set_weight(self.svc.backend, slot, wanted[slot])
            self.svc.weights[slot] = wanted[slot]
        self.save()
        self.log.add(f"HAProxy weights of {self.svc.backend}: stable {stable}, canary {canary}")

    def empty(self, slot: str) -> None:
        """Takes the slot out of service (weight 0, maintenance) and stops its version unless the other
        slot sends to it too."""
        version = self.svc.slots[slot]
        self.api.set_weight(self.svc.backend, slot, 0)
        self.api.set_state(self.svc.backend, slot, "maint")
        self.svc.slots[slot] = None
        self.svc.weights[slot] = 0
        self.save()
        self.log.add(f"HAProxy {self.svc.backend}/{slot} is empty (maintenance)")
        if version and version not in self.svc.slots.values():
            self.retire(version)

    def take_over(self, run: VersionRun) -> None:
        """`run` becomes the stable version with all the traffic; the canary slot ends empty and every
        other version is stopped. Traffic always has a live process to go to on the way."""
        svc = self.svc
        if svc.stable != run.version:
            if svc.stable is not None:
                if svc.canary != run.version:
                    if svc.canary is not None:
                        self.weigh(stable=100, canary=0)
                        self.empty("canary")
                    self.point("canary", run)
                self.weigh(stable=0, canary=100)
            self.point("stable", run)
        self.weigh(stable=100, canary=0)
        if svc.canary is not None:
            self.empty("canary")
        self.retire_others(keep={run.version})

    def retire(self, version: str) -> None:
        run = self.svc.processes.pop(version, None)
        if run is None:
            return
        stopped = stop(run.process, timeout=self.driver.config.stop_timeout_seconds)
        self.save()
        if stopped:
            self.log.add(f"stopped {self.svc.service} {version} (pid {run.pid})")

    def retire_others(self, *, keep: set[str | None]) -> None:
        for version in list(self.svc.processes):
            if version not in keep and version not in self.svc.slots.values():
                self.retire(version)

    def _wait_up(self, slot: str) -> None:
        deadline = time.monotonic() + UP_TIMEOUT_SECONDS
        while True:
            state = self.api.servers(self.svc.backend).get(slot)
            if state is not None and state.up:
                return
            if time.monotonic() > deadline:
                raise DriverError(
                    f"HAProxy does not have {self.svc.backend}/{slot} up after {UP_TIMEOUT_SECONDS:g} s "
                    f"(state {state.op_state if state else 'unknown'}): its health check fails",
                    code="deploys.haproxy_refused",
                )
            time.sleep(0.1)
