"""Git sources that stay in sync: fetch, read what changed, apply, record the outcome, schedule again.

A sync has two halves, so that no transaction is held across the network or the disk:
1. `prepare`, outside any transaction: fetch the repository into its cached working copy (locked
   against a concurrent sync of the same repository) and read what changed (incremental.py).
2. `finish_sync` / `import_git`, in the caller's transaction: apply it, keep what was read for the
   next sync, record the outcome and how long it took, and schedule the next sync.

The schedule: each source has one periodic job that counts, the one whose `slot` (its planned due
time) is the source's `next_sync_at`. Running, it schedules its successor at now + the interval, with
an idempotency key made of the source and that due time, in the transaction that completes it: a
retried job never leaves two successors. A job whose slot is not the source's (the source was
imported again, or its schedule re-armed) finds it superseded and ends without doing anything. A
sync that cannot fetch is recorded on the source with its error; the schedule goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker, undefer

from quarterdeck import jobs
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import incremental, sources
from quarterdeck.catalog.descriptors import FileResult
from quarterdeck.catalog.incremental import Plan, SyncState
from quarterdeck.catalog.models import CatalogSource
from quarterdeck.catalog.sync import ImportReport, apply_import, audit_import, count_owned
from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.db import lock_row, transaction
from quarterdeck.errors import Conflict, Invalid, QuarterdeckError
from quarterdeck.integrations import git

SYNC_JOB = "catalog.sync_source"
SYNC_ACTOR = Actor.system("sync")
MIN_INTERVAL_SECONDS = 30
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
MAX_ERROR_CHARS = 2000


class SyncResult(StrEnum):
    OK = "ok"
    """Fetched and applied; no file had problems."""
    ERRORS = "errors"
    """Fetched and applied; some files had problems (their entities keep their last good version)."""
    FAILED = "failed"
    """Nothing applied: the repository could not be fetched or read."""

    @property
    def badge(self) -> str:
        """The CSS class of its badge on pages."""
        return {"ok": "state-succeeded", "errors": "state-running", "failed": "state-failed"}[self.value]


@dataclass(frozen=True)
class SourceSnapshot:
    """A git source as a sync finds it before fetching (read in a short read-only transaction)."""

    id: int
    key: str
    location: str
    generation: int
    next_sync_at: datetime | None
    sync_enabled: bool
    state: SyncState | None
    """What the last sync read, when the next one may build on it (incremental.trusted)."""

    def is_due(self, slot: datetime | None) -> bool:
        """Whether a job for this source should run: any "sync now"; a periodic one only while its
        slot is the source's next sync and syncing is on."""
        return slot is None or (self.sync_enabled and self.next_sync_at == slot)


@dataclass
class Prepared:
    """A sync's work done outside any transaction: the commit fetched, the plan, the files read.
    `plan` is None when the commit is the one already applied and nothing needed reading."""

    tree: sources.SourceTree
    previous: SyncState | None
    plan: Plan | None
    results: list[FileResult] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


def snapshot(session: Session, source_id: int) -> SourceSnapshot | None:
    """The git source `source_id` as it is now; None when there is no such git source."""
    source = session.get(CatalogSource, source_id, options=[undefer(CatalogSource.file_state)])
    if source is None or source.kind != "git":
        return None
    state = SyncState.from_json(source.file_state)
    return SourceSnapshot(
        id=source.id,
        key=source.key,
        location=source.location,
        generation=source.generation,
        next_sync_at=source.next_sync_at,
        sync_enabled=source.sync_enabled,
        state=incremental.trusted(state, count_owned(session, source.key)),
    )


def prepare(
    key: str,
    location: str,
    previous: SyncState | None,
    *,
    cache_dir: Path,
    progress: sources.Progress | None = None,
) -> Prepared:
    """Fetch `location` and read what changed since `previous` (everything when None). Raises
    Unavailable when git cannot fetch it. Holds no transaction: call it before the first statement."""
    started = time.perf_counter()
    with git.working_copy(location, cache_dir) as (root, commit):
        tree = sources.SourceTree(key, "git", location, root.resolve(), commit)
        if incremental.nothing_to_read(previous, commit):
            return Prepared(tree, previous, None, started=started)
        planned = incremental.plan(tree, git.list_files(root), previous)
        results = incremental.read(tree, planned, progress)
    return Prepared(tree, previous, planned, results, started)


def _source(session: Session, key: str) -> CatalogSource | None:
    source = session.scalar(select(CatalogSource).where(CatalogSource.key == key))
    if source is not None:
        lock_row(session, source)
    return source


def _apply(
    session: Session,
    prepared: Prepared,
    source: CatalogSource | None,
    now: datetime,
    *,
    strict_references: bool,
) -> tuple[CatalogSource, ImportReport]:
    """Apply what was read; keep it for the next sync; record the outcome. Creates the source."""
    tree, planned = prepared.tree, prepared.plan
    assert planned is not None
    report = apply_import(
        session,
        key=tree.key,
        kind="git",
        location=tree.location,
        revision=tree.revision,
        results=prepared.results,
        now=now,
        ignored_files=len(planned.ignored),
        notices=tree.notices,
        kept=incremental.kept(planned, prepared.previous, prepared.results),
        strict_references=strict_references,
    )
    state = incremental.next_state(
        tree, planned, prepared.results, report, entities=count_owned(session, tree.key)
    )
    source = source or _source(session, tree.key)
    assert source is not None
    source.file_state = state.to_json()
    result = SyncResult.ERRORS if report.errors else SyncResult.OK
    _record(source, prepared.started, now, result, files_read=report.files_read)
    return source, report


def _record(
    source: CatalogSource,
    started: float,
    now: datetime,
    result: SyncResult,
    *,
    files_read: int = 0,
    error: str | None = None,
) -> None:
    """The outcome of one sync on its source; it started `started` (time.perf_counter) ago."""
    duration = time.perf_counter() - started
    source.last_sync_started_at = now - timedelta(seconds=duration)
    source.last_sync_finished_at = now
    source.last_sync_duration_ms = round(duration * 1000)
    source.last_sync_result = result.value
    source.last_sync_error = error
    source.last_sync_files_read = files_read


def finish_sync(
    session: Session,
    prepared: Prepared,
    snapshot: SourceSnapshot,
    *,
    now: datetime,
    periodic: bool,
    strict_references: bool = False,
) -> ImportReport | None:
    """Apply a prepared sync in the caller's transaction (the job's); the report, or None when the
    commit was already applied (or the source is gone). Raises Conflict when another sync or a
    portal edit changed the source since `snapshot` was taken: prepare it again."""
    source = _source(session, snapshot.key)
    if source is None:
        return None
    if source.generation != snapshot.generation:
        raise Conflict(f"{git.redact(snapshot.key)} was imported meanwhile", code="catalog.sync_raced")
    if snapshot.state is not None and count_owned(session, snapshot.key) != snapshot.state.entities:
        raise Conflict(f"entities of {git.redact(snapshot.key)} changed meanwhile", code="catalog.sync_raced")
    report = None
    if prepared.plan is None:
        errors = prepared.previous.errors if prepared.previous else 0
        _record(source, prepared.started, now, SyncResult.ERRORS if errors else SyncResult.OK)
    else:
        report = _apply(session, prepared, source, now, strict_references=strict_references)[1]
        audit_import(session, SYNC_ACTOR, report, at=now, action="catalog.sync", only_changes=True)
    if periodic:
        schedule_next(session, source, now)
    return report


def record_failure(
    session: Session,
    snapshot: SourceSnapshot,
    error: QuarterdeckError,
    *,
    started: float,
    now: datetime,
    periodic: bool,
) -> None:
    """A sync that could not fetch or read its repository: its error on the source; the schedule goes on."""
    source = _source(session, snapshot.key)
    if source is None:
        return
    # git's words may hold a file name that is not UTF-8 (see git._git): stored as the database can.
    message = git.redact(error.message).encode("utf-8", "replace").decode("utf-8")
    _record(source, started, now, SyncResult.FAILED, error=message[:MAX_ERROR_CHARS])
    if periodic:
        schedule_next(session, source, now)


def schedule_next(session: Session, source: CatalogSource, now: datetime) -> datetime | None:
    """Arm the source's periodic sync at now + its interval; None when it does not sync on its own."""
    if source.kind != "git" or not source.sync_enabled:
        source.next_sync_at = None
        return None
    slot = now + timedelta(seconds=source.sync_interval_seconds)
    source.next_sync_at = slot
    jobs.enqueue(
        session,
        SYNC_JOB,
        {"source_id": source.id, "slot": slot.isoformat()},
        now=now,
        due_at=slot,
        idempotency_key=f"{SYNC_JOB}:{source.id}:{slot.isoformat()}",
    )
    return slot


def ensure_scheduled(session: Session, source: CatalogSource, now: datetime) -> datetime | None:
    """Arm the periodic sync unless it is armed and not overdue by a whole interval (its job was
    then parked or cancelled, or no worker ran): a source never stays without its schedule."""
    armed = source.next_sync_at
    interval = timedelta(seconds=source.sync_interval_seconds)
    if armed is not None and source.sync_enabled and armed + interval > now:
        return armed
    return schedule_next(session, source, now)


def check_interval(seconds: int) -> int:
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise Invalid(
            f"sync interval {seconds} s: expected {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS} seconds",
            code="catalog.bad_sync_interval",
            details=[{"field": "sync_interval_seconds", "message": "out of range"}],
        )
    return seconds


def import_git(
    sessions: sessionmaker[Session],
    url: str,
    *,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    progress: sources.Progress | None = None,
    sync_every: int | None = None,
    sync: bool | None = None,
) -> ImportReport:
    """Import a git repository by hand: every file read, the sync settings given applied (those not
    given kept), and the periodic sync armed. The import is one audit entry."""
    if sync_every is not None:
        check_interval(sync_every)
    prepared = prepare(f"git:{url}", url, None, cache_dir=settings.git_cache_dir, progress=progress)
    with transaction(sessions) as session:
        now = clock.now()
        source, report = _apply(session, prepared, None, now, strict_references=settings.strict_references)
        audit_import(session, actor, report, at=now)
        changed = (sync_every is not None and sync_every != source.sync_interval_seconds) or (
            sync is not None and sync != source.sync_enabled
        )
        if sync_every is not None:
            source.sync_interval_seconds = sync_every
        if sync is not None:
            source.sync_enabled = sync
        if changed:  # the schedule armed before, if any, is superseded
            report.next_sync_at = schedule_next(session, source, now)
        else:
            report.next_sync_at = ensure_scheduled(session, source, now)
        return report
