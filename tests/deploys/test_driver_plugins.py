"""Drivers from plugins: the example plugin package (tests/fixtures/driver_plugin) is found through the
entry point its pyproject.toml declares and used; a broken or misdeclared one is refused naming its
entry point; an unknown driver name lists the known ones. Entry points are built as
importlib.metadata.EntryPoint objects from the fixture's own pyproject.toml: no install, no network."""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from quarterdeck.clock import SystemClock
from quarterdeck.deploys.drivers import (
    ENTRY_POINT_GROUP,
    DeployDriver,
    DriverConfigError,
    DriverRegistry,
    StepTarget,
    load_drivers,
)
from tests.conftest import ROOT

PLUGIN = ROOT / "tests" / "fixtures" / "driver_plugin"
TARGET = StepTarget("checkout", "staging", "1.4.2", baseline_version="1.4.1")


def declared_entry_points() -> list[EntryPoint]:
    """The plugin's entry points as an installed copy of it would declare them."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    group = project["entry-points"][ENTRY_POINT_GROUP]
    return [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in group.items()]


@pytest.fixture
def plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(PLUGIN))
    yield
    sys.modules.pop("qd_weights_file", None)


def drivers_file(tmp_path: Path, driver: str, config: str) -> Path:
    path = tmp_path / "deploy-drivers.yaml"
    path.write_text(f"drivers:\n  - service: checkout\n    driver: {driver}\n    config: {config}\n")
    return path


def test_a_driver_from_an_entry_point_is_found_and_used(plugin_on_path: None, tmp_path: Path) -> None:
    registry = DriverRegistry(declared_entry_points())
    assert registry.names() == ["command", "local", "weights-file"]
    path = drivers_file(tmp_path, "weights-file", "{folder: splits}")

    drivers = load_drivers(path, state_root=tmp_path / "state", clock=SystemClock(), registry=registry)
    driver = drivers.driver_for("checkout", "staging")
    assert isinstance(driver, DeployDriver)

    driver.prepare(TARGET, "deploy:1:step:1")
    result = driver.set_traffic(TARGET, 25, "deploy:1:step:2")
    again = driver.set_traffic(TARGET, 25, "deploy:1:step:2")

    split = json.loads((tmp_path / "splits" / "checkout.staging.json").read_text())
    assert split == {"stable": "1.4.1", "canary": "1.4.2", "weight": 25}
    assert result.log == ('checkout.staging.json: {"canary": "1.4.2", "stable": "1.4.1", "weight": 25}',)
    assert (result.applied, again.applied) == (True, False)
    assert (tmp_path / "state" / "weights-file" / "keys").is_dir()
    assert driver.status(TARGET).weight_of("1.4.2") == 25
    driver.promote(TARGET, "deploy:1:step:3")
    assert driver.status(TARGET).weight_of("1.4.2") == 100


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        # the module is not installed
        (
            "qd_missing_driver:Driver",
            "cannot be loaded: ModuleNotFoundError: No module named 'qd_missing_driver'",
        ),
        # the module is there, the class is not
        ("qd_weights_file:NoSuchDriver", "cannot be loaded: AttributeError:"),
        # not a class
        ("qd_weights_file:json", "is a module, not a driver class"),
        # a class that is not a driver
        (
            "qd_weights_file:WeightsFileConfig",
            "class WeightsFileConfig lacks from_config, prepare, set_traffic, promote, rollback, status",
        ),
    ],
)
def test_a_broken_plugin_is_refused_naming_its_entry_point(
    plugin_on_path: None, tmp_path: Path, value: str, problem: str
) -> None:
    registry = DriverRegistry([EntryPoint("broken", value, ENTRY_POINT_GROUP)])
    path = drivers_file(tmp_path, "broken", "{}")

    with pytest.raises(DriverConfigError) as caught:
        load_drivers(path, state_root=tmp_path, clock=SystemClock(), registry=registry)

    message = caught.value.message
    entry_point = f"(entry point `broken = {value}` in quarterdeck.drivers)"
    assert message.startswith(f"{path}:2, drivers[0]: driver plugin 'broken' {entry_point}")
    assert problem in message
    assert caught.value.code == "deploys.broken_driver_plugin"


def test_a_plugin_checks_its_own_configuration(plugin_on_path: None, tmp_path: Path) -> None:
    registry = DriverRegistry(declared_entry_points())
    path = drivers_file(tmp_path, "weights-file", "{folder: splits, format: yaml}")

    with pytest.raises(
        DriverConfigError, match=r"drivers\[0\], config.format: is not a setting of this driver"
    ):
        load_drivers(path, state_root=tmp_path, clock=SystemClock(), registry=registry)


def test_an_unknown_driver_lists_the_known_ones(plugin_on_path: None) -> None:
    registry = DriverRegistry(declared_entry_points())

    with pytest.raises(DriverConfigError) as caught:
        registry.builder("kubernetes")
    assert (
        caught.value.message == "no deploy driver is named 'kubernetes'; known: command, local, weights-file"
    )


def test_a_plugin_cannot_take_a_built_in_name_and_two_cannot_share_one() -> None:
    registry = DriverRegistry(
        [
            EntryPoint("local", "somewhere:Local", ENTRY_POINT_GROUP),
            EntryPoint("nomad", "pkg_a:Nomad", ENTRY_POINT_GROUP),
            EntryPoint("nomad", "pkg_b:Nomad", ENTRY_POINT_GROUP),
            EntryPoint("other", "pkg_c:Other", "another.group"),
        ]
    )

    assert registry.names() == ["command", "local", "nomad"]
    assert registry.builder("local").__qualname__ == "LocalDriver.from_config"
    with pytest.raises(
        DriverConfigError, match=r"driver 'nomad' is registered by 2 entry points \(`pkg_a:Nomad`"
    ):
        registry.builder("nomad")


def test_the_installed_entry_points_are_read_when_none_are_given() -> None:
    assert DriverRegistry().names()[:2] == ["command", "local"]
