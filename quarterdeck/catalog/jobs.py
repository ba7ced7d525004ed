"""The catalog's job handlers: `catalog.sync_source` keeps a git source in sync (source_sync.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quarterdeck.catalog import source_sync
from quarterdeck.db import RUNTIME_KEY
from quarterdeck.errors import Conflict, QuarterdeckError
from quarterdeck.jobs import Backoff, JobContext, JobRegistry, PermanentFailure, RetryLater
from quarterdeck.runtime import Runtime

SYNC_LEASE_SECONDS = 600.0
"""A fetch may take git's whole timeout (integrations/git.py): the lease outlasts it."""
RACED_DELAY_SECONDS = 1.0


@dataclass(frozen=True)
class SyncRequest:
    """A sync job's payload: the source, and for a periodic sync the due time it was planned for."""

    source_id: int
    slot: datetime | None

    @classmethod
    def of(cls, payload: Any) -> SyncRequest:
        try:
            source_id = payload["source_id"]
            slot = payload.get("slot")
            if not isinstance(source_id, int) or source_id < 1:
                raise ValueError(f"source_id {source_id!r}")
            return cls(source_id, datetime.fromisoformat(slot) if slot is not None else None)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise PermanentFailure(f"{source_sync.SYNC_JOB}: bad payload {payload!r}: {exc}") from exc


def _runtime(ctx: JobContext) -> Runtime:
    runtime = ctx.session.info.get(RUNTIME_KEY)
    if not isinstance(runtime, Runtime):
        raise PermanentFailure("the worker's sessions were not made by a Runtime: no settings to sync with")
    return runtime


def sync_source(ctx: JobContext) -> None:
    """Fetch and read before the job's session runs a statement (on SQLite its first one takes the
    write lock until the job completes); the source is read through a reading session meanwhile."""
    request = SyncRequest.of(ctx.payload)
    runtime = _runtime(ctx)
    with runtime.sessions() as reading:
        found = source_sync.snapshot(reading, request.source_id)
    if found is None or not found.is_due(request.slot):
        return  # the source is gone, or this periodic job was superseded: its schedule ends here
    periodic = request.slot is not None
    started = time.perf_counter()
    try:
        prepared = source_sync.prepare(
            found.key, found.location, found.state, cache_dir=runtime.settings.git_cache_dir
        )
    except QuarterdeckError as exc:
        source_sync.record_failure(
            ctx.session, found, exc, started=started, now=ctx.clock.now(), periodic=periodic
        )
        return
    try:
        source_sync.finish_sync(
            ctx.session,
            prepared,
            found,
            now=ctx.clock.now(),
            periodic=periodic,
            strict_references=runtime.settings.strict_references,
        )
    except Conflict as exc:
        if exc.code != "catalog.sync_raced":
            raise
        raise RetryLater(RACED_DELAY_SECONDS, exc.message) from exc


def register_jobs(registry: JobRegistry) -> None:
    registry.register(
        source_sync.SYNC_JOB,
        sync_source,
        backoff=Backoff(max_attempts=5, base_seconds=30.0, factor=2.0, jitter=0.2),
        lease_seconds=SYNC_LEASE_SECONDS,
    )
