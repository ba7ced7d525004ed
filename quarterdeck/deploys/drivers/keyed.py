"""KeyedDriver: a base class that keeps the driver contract for its subclasses (each key applied once,
a key naming one effect, bounded logs, DriverError carrying the log), so a driver only writes what its
steps do. The built-in drivers extend it; plugins are encouraged to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Self

from quarterdeck.deploys.drivers.base import (
    DriverContext,
    DriverError,
    DriverStatus,
    StepResult,
    StepTarget,
)
from quarterdeck.deploys.drivers.ledger import RECORD_LOG_LINES, KeyLedger
from quarterdeck.deploys.drivers.steplog import StepLog


class KeyedDriver(ABC):
    """Implements DeployDriver's four mutating methods over `apply_*` hooks that write to a StepLog.

    A hook raises DriverError to fail the step; what it logged goes with the error. A hook that
    returns has applied its effect: the key is recorded, and the same key later returns at once with
    `applied=False`. Keys live in `<state_dir>/keys` unless the subclass passes another ledger."""

    def __init__(self, context: DriverContext, *, ledger: KeyLedger | None = None) -> None:
        self.context = context
        self.ledger = ledger or KeyLedger(context.state_dir / "keys")

    @classmethod
    @abstractmethod
    def from_config(cls, config: Mapping[str, Any], context: DriverContext) -> Self: ...

    @abstractmethod
    def apply_prepare(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None: ...

    @abstractmethod
    def apply_traffic(self, target: StepTarget, weight: int, idempotency_key: str, log: StepLog) -> None: ...

    @abstractmethod
    def apply_promote(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None: ...

    @abstractmethod
    def apply_rollback(self, target: StepTarget, idempotency_key: str, log: StepLog) -> None: ...

    @abstractmethod
    def status(self, target: StepTarget) -> DriverStatus: ...

    def prepare(self, target: StepTarget, idempotency_key: str) -> StepResult:
        return self._once(
            f"prepare {target.where}",
            idempotency_key,
            lambda log: self.apply_prepare(target, idempotency_key, log),
        )

    def set_traffic(self, target: StepTarget, weight: int, idempotency_key: str) -> StepResult:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise DriverError(
                f"set_traffic for {target.where}: weight {weight!r} is not a share of traffic from 0 to 100",
                code="deploys.bad_weight",
            )
        return self._once(
            f"set_traffic {target.where}: {weight} %",
            idempotency_key,
            lambda log: self.apply_traffic(target, weight, idempotency_key, log),
        )

    def promote(self, target: StepTarget, idempotency_key: str) -> StepResult:
        return self._once(
            f"promote {target.where}",
            idempotency_key,
            lambda log: self.apply_promote(target, idempotency_key, log),
        )

    def rollback(self, target: StepTarget, idempotency_key: str) -> StepResult:
        return self._once(
            f"rollback {target.where}",
            idempotency_key,
            lambda log: self.apply_rollback(target, idempotency_key, log),
        )

    def _once(self, effect: str, key: str, apply: Callable[[StepLog], None]) -> StepResult:
        with self.ledger.hold(key) as held:
            if held.record is not None:
                if held.record.effect != effect:
                    raise DriverError(
                        f"idempotency key {key!r} was used for `{held.record.effect}`; it cannot also "
                        f"name `{effect}`",
                        code="deploys.key_reused",
                    )
                when = held.record.at.isoformat(timespec="seconds")
                return StepResult(
                    log=(f"key {key} was applied at {when}: nothing done again", *held.record.log_tail),
                    applied=False,
                )
            log = StepLog()
            try:
                apply(log)
            except DriverError as exc:
                log.close()
                exc.with_log(log.lines())
                raise
            log.close()
            lines = log.lines()
            held.save(effect, self.context.clock.now(), lines[-RECORD_LOG_LINES:])
            return StepResult(log=lines, applied=True)
