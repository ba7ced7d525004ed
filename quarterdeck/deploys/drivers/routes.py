"""Which driver deploys which service in which environment: the drivers file QD_DEPLOY_DRIVERS names.

    drivers:
      - service: hello              # a slug or a glob (`shop-*`), or a list of them; default "*"
        environment: "*"            # likewise
        driver: local               # command, local, or a plugin's name
        config: {command: [...]}    # the driver's own settings
      - driver: command
        config: {...}

Rules are tried in order; the first that matches both the service and the environment wins. Each
rule's driver is built (and its configuration checked) when the file is loaded, so a mistake stops
the start-up naming the file, line and field, never a deploy halfway.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quarterdeck.clock import Clock
from quarterdeck.deploys.drivers.base import DeployDriver, DriverConfigError, DriverContext
from quarterdeck.deploys.drivers.registry import DriverRegistry
from quarterdeck.errors import NotFound
from quarterdeck.runtime import Runtime

MAX_FILE_BYTES = 1024 * 1024
Patterns = str | list[str]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Patterns = "*"
    environment: Patterns = "*"
    driver: str = Field(min_length=1, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class DriverRule:
    services: tuple[str, ...]
    environments: tuple[str, ...]
    driver_name: str
    driver: DeployDriver
    where: str

    def matches(self, service: str, environment: str) -> bool:
        return any(fnmatch.fnmatchcase(service, p) for p in self.services) and any(
            fnmatch.fnmatchcase(environment, p) for p in self.environments
        )


class DeployDrivers:
    """The drivers of an install and the rule that picks one for a service in an environment."""

    def __init__(self, rules: Sequence[DriverRule], source: Path | None) -> None:
        self.rules = tuple(rules)
        self.source = source

    def rule_for(self, service: str, environment: str) -> DriverRule:
        for rule in self.rules:
            if rule.matches(service, environment):
                return rule
        if self.source is None:
            message = (
                "no deploy drivers are configured: set QD_DEPLOY_DRIVERS to a drivers file (docs/drivers.md)"
            )
        else:
            message = f"{self.source} has no rule for service {service!r} in environment {environment!r}"
        raise NotFound(
            message, code="deploys.no_driver", details={"service": service, "environment": environment}
        )

    def driver_for(self, service: str, environment: str) -> DeployDriver:
        return self.rule_for(service, environment).driver


def load_drivers(
    path: Path | None, *, state_root: Path, clock: Clock, registry: DriverRegistry | None = None
) -> DeployDrivers:
    """The drivers file at `path` (None: no drivers), every rule's driver built and checked."""
    if path is None:
        return DeployDrivers((), None)
    registry = registry or DriverRegistry()
    text = _read(path)
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DriverConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    items = data.get("drivers") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise DriverConfigError(f"{path}: expected `drivers:` with a list of rules (docs/drivers.md)")
    lines = _rule_lines(root)
    rules = []
    for index, item in enumerate(items):
        where = (
            f"{path}:{lines[index]}, drivers[{index}]" if index < len(lines) else f"{path}, drivers[{index}]"
        )
        rules.append(_rule(item, where, path, state_root, clock, registry))
    return DeployDrivers(rules, path)


def deploy_drivers(runtime: Runtime) -> DeployDrivers:
    """The drivers of this runtime's settings, loaded once per process (QD_DEPLOY_DRIVERS)."""
    settings = runtime.settings
    return runtime.state(
        "deploys.drivers",
        lambda: load_drivers(
            settings.deploy_drivers, state_root=settings.deploy_state_dir, clock=runtime.clock
        ),
    )


def _rule(
    item: Any, where: str, path: Path, state_root: Path, clock: Clock, registry: DriverRegistry
) -> DriverRule:
    try:
        rule = RuleIn.model_validate(item)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "rule"
        message = "is not a field of a rule" if error["type"] == "extra_forbidden" else error["msg"]
        raise DriverConfigError(
            f"{where}, {field}: {message}", details=[{"field": field, "where": where, "message": message}]
        ) from None
    try:
        build = registry.builder(rule.driver)
    except DriverConfigError as exc:
        raise DriverConfigError(f"{where}: {exc.message}", code=exc.code, details=exc.details) from exc
    context = DriverContext(
        name=rule.driver,
        state_dir=state_root / rule.driver,
        base_dir=path.parent.resolve(),
        where=where,
        clock=clock,
    )
    return DriverRule(
        services=_patterns(rule.service),
        environments=_patterns(rule.environment),
        driver_name=rule.driver,
        driver=build(rule.config, context),
        where=where,
    )


def _patterns(value: Patterns) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DriverConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise DriverConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DriverConfigError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _rule_lines(root: yaml.Node | None) -> list[int]:
    """The line (1-based) each rule of `drivers:` starts on, for error messages."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if (
            isinstance(key, yaml.ScalarNode)
            and key.value == "drivers"
            and isinstance(value, yaml.SequenceNode)
        ):
            return [node.start_mark.line + 1 for node in value.value]
    return []
