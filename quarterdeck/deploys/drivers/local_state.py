"""What the local driver remembers, in state.json of its state folder: per service and environment, the
processes it runs (version, port, pid), which version sits in HAProxy's `stable` and `canary` slots
and their weights. Written whole after every change, so a driver built anew over the folder (after a
crash, in another worker) picks up where the last one was.

Beside it, prometheus-targets.json lists the same processes as Prometheus file-based service discovery
targets (`file_sd_configs`), rewritten with the state, so a Prometheus pointed at it scrapes every
version the driver runs, labelled with its service, version, environment and slot."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quarterdeck.deploys.drivers.base import DriverError
from quarterdeck.deploys.drivers.haproxy import BackendSpec, ServerSlot, write_atomically
from quarterdeck.deploys.drivers.processes import Running

FORMAT = 1
TARGETS_FILE = "prometheus-targets.json"
NO_SLOT = "none"
"""The `slot` label of a process no slot sends to (started, not yet in a slot; about to be stopped)."""


@dataclass
class VersionRun:
    """One version's process."""

    version: str
    port: int
    pid: int
    started: int

    @property
    def process(self) -> Running:
        return Running(self.pid, self.started)


@dataclass
class ServiceState:
    """One service in one environment: its HAProxy frontend and backend, and what runs behind them."""

    service: str
    environment: str
    name: str
    bind: str
    listen_port: int
    health_path: str
    processes: dict[str, VersionRun] = field(default_factory=dict)
    slots: dict[str, str | None] = field(default_factory=lambda: {"stable": None, "canary": None})
    """Server slot -> the version it sends to (None: empty, in maintenance)."""
    weights: dict[str, int] = field(default_factory=lambda: {"stable": 0, "canary": 0})
    """Server slot -> its HAProxy weight (0 to 256)."""

    @property
    def stable(self) -> str | None:
        return self.slots["stable"]

    @property
    def canary(self) -> str | None:
        return self.slots["canary"]

    @property
    def backend(self) -> str:
        return f"be_{self.name}"

    @property
    def address(self) -> str:
        return f"http://{self.bind}:{self.listen_port}"

    def spec(self) -> BackendSpec:
        slots = []
        for slot in ("stable", "canary"):
            version = self.slots[slot]
            run = self.processes.get(version) if version else None
            slots.append(ServerSlot(slot, run.port if run else None, self.weights[slot]))
        return BackendSpec(self.name, self.bind, self.listen_port, self.health_path, tuple(slots))


@dataclass
class LocalState:
    services: dict[str, ServiceState] = field(default_factory=dict)
    structure: str = ""
    """The shape of the configuration the running haproxy was (re)loaded with (haproxy.structure_of)."""

    @staticmethod
    def key(service: str, environment: str) -> str:
        return f"{service}@{environment}"

    @classmethod
    def load(cls, path: Path) -> LocalState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise DriverError(
                f"the local driver's state {path} cannot be read: {exc}; move it away to start afresh",
                code="deploys.driver_state",
            ) from exc
        if raw.get("format") != FORMAT:
            raise DriverError(
                f"the local driver's state {path} has format {raw.get('format')!r}, expected {FORMAT}",
                code="deploys.driver_state",
            )
        services = {}
        for key, body in raw.get("services", {}).items():
            processes = {v: VersionRun(**run) for v, run in body.pop("processes", {}).items()}
            services[key] = ServiceState(**body, processes=processes)
        return cls(services, str(raw.get("structure", "")))

    def save(self, path: Path) -> None:
        body: dict[str, Any] = {
            "format": FORMAT,
            "structure": self.structure,
            "services": {
                key: {
                    "service": s.service,
                    "environment": s.environment,
                    "name": s.name,
                    "bind": s.bind,
                    "listen_port": s.listen_port,
                    "health_path": s.health_path,
                    "slots": s.slots,
                    "weights": s.weights,
                    "processes": {v: vars(run) for v, run in s.processes.items()},
                }
                for key, s in sorted(self.services.items())
            },
        }
        write_atomically(path, json.dumps(body, indent=2) + "\n")


def scrape_targets(state: LocalState) -> list[dict[str, Any]]:
    """Every version process of the state as a Prometheus file_sd target group: `targets` holds its
    `127.0.0.1:port`, `labels` its service, version, environment and slot (stable, canary or none)."""
    groups: list[dict[str, Any]] = []
    for _key, svc in sorted(state.services.items()):
        slot_of = {version: slot for slot, version in svc.slots.items() if version is not None}
        for version, run in sorted(svc.processes.items()):
            labels = {
                "service": svc.service,
                "version": version,
                "environment": svc.environment,
                "slot": slot_of.get(version, NO_SLOT),
            }
            groups.append({"targets": [f"127.0.0.1:{run.port}"], "labels": labels})
    return groups


def write_scrape_targets(state: LocalState, path: Path) -> None:
    """Replaces the file_sd targets file whole (Prometheus reads it again when it changes)."""
    write_atomically(path, json.dumps(scrape_targets(state), indent=2) + "\n")


def backend_name(service: str, environment: str) -> str:
    """A name HAProxy accepts for the pair, readable and unique (service slugs may hold `/`)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{service}.{environment}")[:60]
    digest = hashlib.sha256(f"{service}@{environment}".encode()).hexdigest()[:6]
    return f"{readable}-{digest}"
