"""Driver classes by name: the built-in `command` and `local`, and the plugins packages register in the
Python entry point group `quarterdeck.drivers` (name -> class). A plugin is imported only when a rule
of the drivers file names it; a built-in name cannot be taken by a plugin."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import Any, cast

from quarterdeck.deploys.drivers.base import (
    ENTRY_POINT_GROUP,
    DeployDriver,
    DriverConfigError,
    DriverContext,
)
from quarterdeck.deploys.drivers.command import CommandDriver
from quarterdeck.deploys.drivers.local import LocalDriver

DriverBuilder = Callable[[Mapping[str, Any], DriverContext], DeployDriver]
BUILTIN: dict[str, type[Any]] = {"command": CommandDriver, "local": LocalDriver}
METHODS = ("from_config", "prepare", "set_traffic", "promote", "rollback", "status")


class DriverRegistry:
    """The drivers this install knows. `entry_points` replaces the installed ones (tests pass
    importlib.metadata.EntryPoint objects made by hand)."""

    def __init__(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        self._plugins: dict[str, list[metadata.EntryPoint]] = {}
        for entry_point in found:
            if entry_point.group == ENTRY_POINT_GROUP and entry_point.name not in BUILTIN:
                self._plugins.setdefault(entry_point.name, []).append(entry_point)

    def names(self) -> list[str]:
        return sorted({*BUILTIN, *self._plugins})

    def builder(self, name: str) -> DriverBuilder:
        """How to build driver `name` from its configuration; DriverConfigError when no driver has that
        name (listing those that do) or its plugin cannot be loaded (naming its entry point)."""
        if name in BUILTIN:
            return cast(DriverBuilder, BUILTIN[name].from_config)
        candidates = self._plugins.get(name)
        if not candidates:
            raise DriverConfigError(
                f"no deploy driver is named {name!r}; known: {', '.join(self.names())}",
                code="deploys.unknown_driver",
                details=[{"field": "driver", "message": f"unknown driver {name!r}"}],
            )
        if len(candidates) > 1:
            values = ", ".join(f"`{ep.value}`" for ep in candidates)
            raise DriverConfigError(
                f"driver {name!r} is registered by {len(candidates)} entry points ({values}): "
                "uninstall all but one",
                code="deploys.broken_driver_plugin",
            )
        return _load(candidates[0])


def _load(entry_point: metadata.EntryPoint) -> DriverBuilder:
    label = (
        f"driver plugin {entry_point.name!r} "
        f"(entry point `{entry_point.name} = {entry_point.value}` in {ENTRY_POINT_GROUP})"
    )
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise DriverConfigError(
            f"{label} cannot be loaded: {type(exc).__name__}: {exc}",
            code="deploys.broken_driver_plugin",
        ) from exc
    if not inspect.isclass(loaded):
        raise DriverConfigError(
            f"{label} is a {type(loaded).__name__}, not a driver class", code="deploys.broken_driver_plugin"
        )
    missing = [name for name in METHODS if not callable(getattr(loaded, name, None))]
    if missing:
        raise DriverConfigError(
            f"{label}: class {loaded.__name__} lacks {', '.join(missing)} (see docs/drivers.md)",
            code="deploys.broken_driver_plugin",
        )
    if inspect.isabstract(loaded):
        abstract = ", ".join(sorted(getattr(loaded, "__abstractmethods__", ())))
        raise DriverConfigError(
            f"{label}: class {loaded.__name__} does not implement {abstract}",
            code="deploys.broken_driver_plugin",
        )
    plugin: Any = loaded
    build = cast(DriverBuilder, plugin.from_config)

    def checked(config: Mapping[str, Any], context: DriverContext) -> DeployDriver:
        try:
            driver = build(config, context)
        except DriverConfigError:
            raise
        except Exception as exc:
            raise DriverConfigError(
                f"{label}: {loaded.__name__}.from_config failed at {context.where}: "
                f"{type(exc).__name__}: {exc}",
                code="deploys.broken_driver_plugin",
            ) from exc
        if not isinstance(driver, DeployDriver):
            raise DriverConfigError(
                f"{label}: {loaded.__name__}.from_config returned a {type(driver).__name__}, not a driver",
                code="deploys.broken_driver_plugin",
            )
        return driver

    return checked
