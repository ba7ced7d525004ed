"""What a deploy driver is: the methods the orchestrator calls to carry out a deploy's steps, what they
are given (a StepTarget and an idempotency key) and what they answer (a StepResult, a DriverStatus),
and the errors they raise.

A driver moves traffic between two versions of one service in one environment: the baseline that
runs now and the new version being deployed. The orchestrator calls, for one deploy:

    prepare(target, key)              bring the new version up next to the baseline, taking no traffic
    set_traffic(target, weight, key)  give the new version `weight` % of the traffic (0 to 100)
    promote(target, key)              the new version takes 100 %; the baseline is retired
    rollback(target, key)             the baseline takes 100 % again; the new version is retired
    status(target)                    what runs now, with which weights, healthy or not

Idempotent by contract: a method called again with a key it has applied does nothing and says so
(`StepResult.applied` is False), however many times a job is retried after a crash. A key names one
effect: the same key for another method, version or weight is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from quarterdeck.clock import Clock
from quarterdeck.errors import Invalid, QuarterdeckError

M = TypeVar("M", bound=BaseModel)

ENTRY_POINT_GROUP = "quarterdeck.drivers"
"""The Python entry point group a package registers its drivers in: name -> driver class."""


class DriverError(QuarterdeckError):
    """A step's effect could not be carried out. The message is one sentence naming what failed and
    where; `log` is the step's log up to the failure (bounded, its tail kept), for the step's page."""

    default_code = "deploys.driver_failed"

    def __init__(self, message: str, *, log: tuple[str, ...] = (), code: str | None = None) -> None:
        super().__init__(message, code=code, details={"log_tail": list(log[-20:])} if log else None)
        self.log = log

    def with_log(self, log: tuple[str, ...]) -> DriverError:
        """This error carrying the step's log (kept when it already has one)."""
        if not self.log:
            self.log = log
            self.details = {"log_tail": list(log[-20:])} if log else None
        return self


class DriverConfigError(Invalid):
    """The drivers file or a driver's configuration is wrong: unknown driver, broken plugin, bad field.
    Raised when the configuration is loaded, never halfway through a deploy."""

    default_code = "deploys.bad_driver_config"


@dataclass(frozen=True)
class StepTarget:
    """What a step acts on: one version of one service in one environment.

    `baseline_version` is what ran before the deploy (None for a first deploy); `instances` is an
    instance count for drivers that scale rather than weigh (None when the pipeline gives none);
    `variables` are extra values a driver's configuration may name (`{vars.NAME}` in the command
    driver), such as the deploy's id."""

    service: str
    environment: str
    version: str
    image: str | None = None
    baseline_version: str | None = None
    instances: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("service", "environment", "version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"StepTarget.{name} is {value!r}: expected a non-empty string")
        if self.instances is not None and self.instances < 0:
            raise ValueError(f"StepTarget.instances is {self.instances}: expected a count >= 0")

    @property
    def where(self) -> str:
        """`checkout 1.4.2 in staging`: how messages name the target."""
        return f"{self.service} {self.version} in {self.environment}"


@dataclass(frozen=True)
class StepResult:
    """What a step did, for its log on the deploy page."""

    log: tuple[str, ...]
    """The step's output, bounded (about 1,000 lines and 256 KiB): the tail is kept."""
    applied: bool = True
    """False when the idempotency key had been applied before, so nothing was done this time."""


@dataclass(frozen=True)
class SlotStatus:
    """One version that runs: its role, its share of traffic and whether it is healthy."""

    role: str
    """`stable` (the baseline) or `canary` (the version being deployed)."""
    version: str
    weight: int | None
    """Its share of traffic in % (0 to 100), or None when the driver cannot tell."""
    healthy: bool | None
    instances: int | None = None
    address: str | None = None


@dataclass(frozen=True)
class DriverStatus:
    """What runs for one service in one environment, as the driver sees it now."""

    service: str
    environment: str
    slots: tuple[SlotStatus, ...]
    healthy: bool | None
    """Whether everything that takes traffic is healthy; None when the driver cannot tell."""
    address: str | None = None
    """Where the service is reached, when the driver knows (the local driver's HAProxy frontend)."""
    log: tuple[str, ...] = ()

    def weight_of(self, version: str) -> int:
        """The share of traffic (%) `version` takes: 0 when it does not run or the driver cannot tell."""
        return sum(slot.weight or 0 for slot in self.slots if slot.version == version)


@dataclass(frozen=True)
class DriverContext:
    """What a driver is built with besides its own configuration."""

    name: str
    """The name the driver is registered under (`command`, `local`, a plugin's)."""
    state_dir: Path
    """A folder for this driver's state (applied keys, processes): QD_DEPLOY_STATE_DIR/<name>."""
    base_dir: Path
    """The folder relative paths of its configuration are resolved against (the drivers file's)."""
    where: str
    """Where its configuration was read, for error messages: `deploy-drivers.yaml, drivers[0]`."""
    clock: Clock


@runtime_checkable
class DeployDriver(Protocol):
    """The methods the orchestrator calls. Each mutating method takes an idempotency key and must
    apply its effect once per key (KeyedDriver does the bookkeeping for a driver that extends it).
    All are synchronous and may block (processes, sockets): run them on a worker thread, never on
    an event loop. Failures raise DriverError."""

    def prepare(self, target: StepTarget, idempotency_key: str) -> StepResult: ...

    def set_traffic(self, target: StepTarget, weight: int, idempotency_key: str) -> StepResult: ...

    def promote(self, target: StepTarget, idempotency_key: str) -> StepResult: ...

    def rollback(self, target: StepTarget, idempotency_key: str) -> StepResult: ...

    def status(self, target: StepTarget) -> DriverStatus: ...


def read_config(model: type[M], config: Mapping[str, Any], context: DriverContext) -> M:
    """A driver's configuration checked against its model; every problem is reported, each naming its
    field under the rule it came from (`deploy-drivers.yaml, drivers[1], config.timeout_seconds`)."""
    try:
        return model.model_validate(dict(config))
    except ValidationError as exc:
        details = []
        for error in exc.errors():
            field_path = ".".join(str(part) for part in ("config", *error["loc"]))
            message = (
                "is not a setting of this driver"
                if error["type"] == "extra_forbidden"
                else str(error["msg"]).removeprefix("Value error, ")
            )
            details.append({"field": field_path, "where": context.where, "message": message})
        first = details[0]
        raise DriverConfigError(
            f"{context.where}, {first['field']}: {first['message']} ({context.name} driver)",
            details=details,
        ) from None
