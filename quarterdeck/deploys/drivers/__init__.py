"""Deploy drivers: what carries out a deploy's steps (docs/drivers.md). The orchestrator asks
`deploy_drivers(runtime).driver_for(service, environment)` and calls the DeployDriver it gets."""

from quarterdeck.deploys.drivers.base import (
    ENTRY_POINT_GROUP,
    DeployDriver,
    DriverConfigError,
    DriverContext,
    DriverError,
    DriverStatus,
    SlotStatus,
    StepResult,
    StepTarget,
    read_config,
)
from quarterdeck.deploys.drivers.keyed import KeyedDriver
from quarterdeck.deploys.drivers.registry import DriverRegistry
from quarterdeck.deploys.drivers.routes import DeployDrivers, DriverRule, deploy_drivers, load_drivers
from quarterdeck.deploys.drivers.steplog import StepLog

__all__ = [
    "ENTRY_POINT_GROUP",
    "DeployDriver",
    "DeployDrivers",
    "DriverConfigError",
    "DriverContext",
    "DriverError",
    "DriverRegistry",
    "DriverRule",
    "DriverStatus",
    "KeyedDriver",
    "SlotStatus",
    "StepLog",
    "StepResult",
    "StepTarget",
    "deploy_drivers",
    "load_drivers",
    "read_config",
]
