"""What a job handler is given and may raise, and the registry of handlers by kind that domains and
plugins fill through their `register_jobs(registry)` function."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from quarterdeck.clock import Clock
from quarterdeck.errors import Conflict, Invalid, NotFound
from quarterdeck.jobs.retry import Backoff

DEFAULT_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class JobContext:
    """What a handler gets for one attempt of one job.

    Two rules make a handler safe to run again after a crash:
    - Write state through `session`. Its transaction commits together with the job's completion, or
      not at all: if the lease was lost in the meantime, everything written through it rolls back.
      Do not commit it yourself. Do slow outside work (network calls) before the first statement: on
      SQLite the first statement takes the database's write lock until the job completes.
    - Any effect outside the database (a webhook, a message, a call to another system) must carry
      `idempotency_key` so that the other side applies it once, however many attempts send it: an
      attempt can die after its effect and before its completion is written.

    Never sleep to wait: raise RetryLater(seconds) and the job comes back when it is due.
    """

    job_id: int
    kind: str
    payload: Any
    attempt: int
    """1 for the first attempt."""
    max_attempts: int
    idempotency_key: str
    due_at: datetime
    clock: Clock
    session: Session


Handler = Callable[[JobContext], None]


class RetryLater(Exception):
    """Raised by a handler that is waiting for something (a deploy step, an outside system): the job
    comes back after `delay` seconds. Not a failure: no attempt is counted, and what the handler wrote
    through `ctx.session` commits with the rescheduling."""

    def __init__(self, delay: float, reason: str = "") -> None:
        if delay < 0:
            raise ValueError(f"RetryLater delay is {delay}: expected seconds >= 0")
        super().__init__(reason or f"retry in {delay:g} s")
        self.delay = delay
        self.reason = reason


class PermanentFailure(Exception):
    """Raised by a handler when trying again cannot help (bad payload, a thing that no longer exists):
    the job is parked at once with this message, and its writes roll back."""


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    backoff: Backoff
    lease_seconds: float


class JobRegistry:
    """Job kinds and their handlers. A worker freezes it when it starts: what it runs is then fixed."""

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}
        self._frozen = False

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        backoff: Backoff | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        """Run `handler` for jobs of `kind`. Its lease lasts `lease_seconds` and is renewed every third
        of that while it runs; a worker that dies is taken over once that much time has passed."""
        if self._frozen:
            raise Conflict(
                f"job kind {kind!r} registered after the worker started: register in register_jobs()",
                code="jobs.registry_frozen",
            )
        if not kind or len(kind) > 100:
            raise Invalid(f"job kind {kind!r}: expected 1 to 100 characters", code="jobs.bad_kind")
        if kind in self._kinds:
            raise Conflict(f"job kind {kind!r} is registered twice", code="jobs.duplicate_kind")
        if not lease_seconds > 0:
            raise Invalid(f"job kind {kind!r}: lease_seconds must be positive", code="jobs.bad_lease")
        self._kinds[kind] = JobKind(kind, handler, backoff or Backoff(), float(lease_seconds))

    def get(self, kind: str) -> JobKind:
        try:
            return self._kinds[kind]
        except KeyError:
            raise NotFound(f"no handler for job kind {kind!r}", code="jobs.unknown_kind") from None

    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def leases(self) -> dict[str, float]:
        """Lease seconds per kind: what a claim and a heartbeat set."""
        return {name: kind.lease_seconds for name, kind in self._kinds.items()}

    def freeze(self) -> None:
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds

    def __len__(self) -> int:
        return len(self._kinds)


def collect(modules: Sequence[str]) -> JobRegistry:
    """A registry filled by each module's `register_jobs(registry)`, in order: how domains and plugins
    (QD_PLUGINS) add their handlers without this package knowing them."""
    registry = JobRegistry()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise Invalid(f"job handlers: cannot import {name!r}: {exc}", code="jobs.bad_module") from exc
        register = getattr(module, "register_jobs", None)
        if not callable(register):
            raise Invalid(
                f"job handlers: module {name!r} has no register_jobs(registry) function",
                code="jobs.bad_module",
            )
        register(registry)
    return registry
