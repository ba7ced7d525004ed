"""Catalog sources for the admin page and the API: list them, look at one, ask a git source to sync
now. Who may: those who may import (admins, and tokens with the admin scope); the rule is here, so
the page, the API and any later caller share it. The caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from quarterdeck import jobs
from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog.models import CatalogSource
from quarterdeck.catalog.source_sync import SYNC_JOB, SyncResult, ensure_scheduled
from quarterdeck.catalog.sync import ENTITY_MODELS
from quarterdeck.db import lock_row
from quarterdeck.errors import Invalid, NotFound
from quarterdeck.integrations import git

MAX_PROBLEMS = 200
"""At most this many errors (and notices) of the last import are shown for a source."""


class SourceOut(BaseModel):
    """A catalog source and how its syncing goes. Credentials in its URL are never shown."""

    id: int
    kind: str
    location: str
    revision: str | None
    last_imported_at: datetime | None
    entities: int
    syncs: bool
    """Whether it can sync on its own: git repositories only."""
    sync_enabled: bool
    sync_interval_seconds: int
    next_sync_at: datetime | None
    last_sync_started_at: datetime | None
    last_sync_finished_at: datetime | None
    last_sync_duration_ms: int | None
    last_sync_result: SyncResult | None
    last_sync_error: str | None
    last_sync_files_read: int | None


class ProblemOut(BaseModel):
    file: str
    line: int | None
    message: str


class SourceDetail(SourceOut):
    """A source with the errors and notices of its last import (the first MAX_PROBLEMS of each)."""

    files: int | None
    errors_total: int
    errors: list[ProblemOut]
    notices: list[ProblemOut]


class SyncQueued(BaseModel):
    """A sync asked for: the job that runs it."""

    source_id: int
    job_id: int
    due_at: datetime


def _entity_counts(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model in ENTITY_MODELS:
        for source, count in session.execute(select(model.source, func.count()).group_by(model.source)):
            counts[source] = counts.get(source, 0) + count
    return counts


def _out(source: CatalogSource, entities: int) -> dict[str, Any]:
    return {
        "id": source.id,
        "kind": source.kind,
        "location": git.redact(source.location),
        "revision": source.revision,
        "last_imported_at": source.last_imported_at,
        "entities": entities,
        "syncs": source.kind == "git",
        "sync_enabled": source.sync_enabled,
        "sync_interval_seconds": source.sync_interval_seconds,
        "next_sync_at": source.next_sync_at,
        "last_sync_started_at": source.last_sync_started_at,
        "last_sync_finished_at": source.last_sync_finished_at,
        "last_sync_duration_ms": source.last_sync_duration_ms,
        "last_sync_result": source.last_sync_result,
        "last_sync_error": source.last_sync_error,
        "last_sync_files_read": source.last_sync_files_read,
    }


def list_sources(session: Session, actor: Actor) -> list[SourceOut]:
    """Every source, git repositories first, then by location."""
    access.require(actor, "catalog.import")
    counts = _entity_counts(session)
    rows = session.scalars(
        select(CatalogSource).order_by(CatalogSource.kind != "git", CatalogSource.location)
    )
    return [SourceOut.model_validate(_out(row, counts.get(row.key, 0))) for row in rows]


def _find(session: Session, source_id: int, *, with_report: bool = False) -> CatalogSource:
    options = [undefer(CatalogSource.last_report)] if with_report else []
    source = session.get(CatalogSource, source_id, options=options)
    if source is None:
        raise NotFound(f"no catalog source has the id {source_id}", code="catalog.source_not_found")
    return source


def _problems(report: dict[str, Any], name: str) -> list[ProblemOut]:
    return [ProblemOut.model_validate(problem) for problem in report.get(name, [])[:MAX_PROBLEMS]]


def get_source(session: Session, actor: Actor, source_id: int) -> SourceDetail:
    access.require(actor, "catalog.import")
    source = _find(session, source_id, with_report=True)
    report = source.last_report or {}
    counts = _entity_counts(session)
    return SourceDetail.model_validate(
        _out(source, counts.get(source.key, 0))
        | {
            "files": report.get("files"),
            "errors_total": len(report.get("errors", [])),
            "errors": _problems(report, "errors"),
            "notices": _problems(report, "notices"),
        }
    )


def request_sync(session: Session, actor: Actor, source_id: int, *, now: datetime) -> SyncQueued:
    """A sync of the git source due now, beside its periodic schedule (armed again if it had died).

    Asked again before that sync starts, the same job is answered: one click or retried request
    too many never queues a second sync.
    """
    access.require(actor, "catalog.import")
    source = _find(session, source_id)
    if source.kind != "git":
        raise Invalid(
            f"source {source_id} is a {source.kind}, not a git repository: import it again with "
            "`quarterdeck import PATH`",
            code="catalog.source_not_synced",
        )
    lock_row(session, source)
    started = source.last_sync_started_at.isoformat() if source.last_sync_started_at else "never"
    job = jobs.enqueue(
        session,
        SYNC_JOB,
        {"source_id": source.id},
        now=now,
        due_at=now,
        idempotency_key=f"{SYNC_JOB}:{source.id}:now-after:{started}",
    )
    ensure_scheduled(session, source, now)
    access.record(
        session,
        actor,
        "catalog.sync_requested",
        target=("source", git.redact(source.key)),
        at=now,
        note=f"job {job.id}",
    )
    return SyncQueued(source_id=source.id, job_id=job.id, due_at=job.due_at)
