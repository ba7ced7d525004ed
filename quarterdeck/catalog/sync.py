"""Applying one source's descriptors to the catalog: create, update, keep last good, remove.

Rules, per source:
- an entity another source (or the UI) already defines is refused with a conflict problem;
- an entity edited in the UI since it was imported stays as the UI left it;
- an unchanged descriptor (same content hash) writes nothing;
- a refused descriptor, or a file with any problem, keeps the last good version of the entities it
  used to define and attaches the problems to them, where their pages show them;
- an entity whose descriptor is gone (file deleted, or a clean file no longer defines it) is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, lazyload

from quarterdeck.catalog import store
from quarterdeck.catalog.descriptors import Draft, FileResult, Problem
from quarterdeck.catalog.models import CatalogSource, Person, Service, System, Team

ANALYZE_AFTER = 1000  # rows written by one import before the planner's statistics are refreshed
ENTITY_MODELS: tuple[type[Service] | type[Team] | type[Person] | type[System], ...] = (
    Service,
    Team,
    Person,
    System,
)


@dataclass
class ImportReport:
    source: str
    revision: str | None = None
    files: int = 0
    entities: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    ignored_files: int = 0
    errors: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "revision": self.revision,
            "files": self.files,
            "entities": self.entities,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "ignored_files": self.ignored_files,
            "errors": [{"file": p.file, "line": p.line, "message": p.message} for p in self.errors],
            "notices": [{"file": p.file, "line": p.line, "message": p.message} for p in self.notices],
            "outcomes": self.outcomes,
        }


def _owned_rows(session: Session, source: str) -> dict[tuple[str, str], store.Entity]:
    rows: dict[tuple[str, str], store.Entity] = {}
    for model in ENTITY_MODELS:
        query = (
            select(model)
            .where(or_(model.source == source, model.detached_from == source))
            .options(lazyload("*"))
        )
        for row in session.scalars(query):
            entity = cast(store.Entity, row)
            rows[store.identity_of(entity)] = entity
    return rows


def _claimed_elsewhere(session: Session, drafts: list[Draft], source: str) -> dict[tuple[str, str], str]:
    """Identities among `drafts` already defined by another source, with that source."""
    wanted: dict[str, set[str]] = {}
    for draft in drafts:
        table, key = draft.identity
        wanted.setdefault(table, set()).add(key.split(":", 1)[1] if table == "service" else key)
    claimed: dict[tuple[str, str], str] = {}
    for table, slugs in wanted.items():
        model = store.MODELS[table]
        ordered = sorted(slugs)
        for start in range(0, len(ordered), 900):
            query = select(model).where(
                model.slug.in_(ordered[start : start + 900]),
                model.source != source,
                or_(model.detached_from.is_(None), model.detached_from != source),
            )
            for row in session.scalars(query):
                entity = cast(store.Entity, row)
                claimed[store.identity_of(entity)] = entity.source
    return claimed


def apply_import(
    session: Session,
    *,
    key: str,
    kind: str,
    location: str,
    revision: str | None,
    results: list[FileResult],
    now: datetime,
    ignored_files: int = 0,
    notices: list[Problem] | None = None,
) -> ImportReport:
    """Make the catalog match what this source says now. Never raises for bad descriptors."""
    report = ImportReport(source=key, revision=revision, files=len(results), ignored_files=ignored_files)
    report.notices.extend(notices or [])
    owned = _owned_rows(session, key)
    drafts: dict[tuple[str, str], Draft] = {}
    failed: dict[tuple[str, str], list[Problem]] = {}
    file_problems: dict[str, list[Problem]] = {}
    for result in results:
        report.outcomes[result.file] = result.outcome.value
        report.errors.extend(result.problems)
        report.notices.extend(result.notices)
        if result.problems:
            file_problems[result.file] = result.problems
        for identity, problems in result.failed.items():
            failed.setdefault(identity, []).extend(problems)
        for draft in result.drafts:
            first = drafts.get(draft.identity)
            if first is not None:
                report.errors.append(_duplicate(draft, first))
                continue
            drafts[draft.identity] = draft
    claimed = _claimed_elsewhere(session, list(drafts.values()), key)
    writes: list[store.Write] = []
    for identity, draft in drafts.items():
        if identity in claimed:
            report.errors.append(_conflict(draft, claimed[identity]))
            continue
        report.entities += 1
        row = owned.get(identity)
        if row is not None and row.detached_from == key:
            report.notices.append(
                Problem(
                    draft.origin.file,
                    draft.origin.line,
                    f"{_label(identity)} was edited in the portal; "
                    "the portal's version is kept and this descriptor is not applied",
                )
            )
            continue
        content_hash = draft.content_hash()
        if row is not None and row.content_hash == content_hash and not row.import_errors:
            report.unchanged += 1
            continue
        if row is None:
            report.created += 1
        else:
            report.updated += 1
        writes.append(store.Write(draft.entity, draft.origin, content_hash, row))
    store.save(session, writes, source=key, now=now)
    if len(writes) >= ANALYZE_AFTER:
        store.refresh_statistics(session)
    for identity, row in owned.items():
        if identity in drafts or row.detached_from == key:
            continue
        stale = failed.get(identity) or file_problems.get(row.source_file or "")
        if stale:
            row.import_errors = [problem.as_dict() for problem in stale]
            continue
        store.remove(session, row)
        report.removed += 1
    _record_source(session, key, kind, location, revision, report, now)
    session.flush()
    return report


def _label(identity: tuple[str, str]) -> str:
    table, key = identity
    return f"{table} {key.split(':', 1)[1] if table == 'service' else key}"


def _duplicate(draft: Draft, first: Draft) -> Problem:
    return Problem(
        draft.origin.file,
        draft.origin.line,
        f"duplicate {_label(draft.identity)}: already defined at {first.origin.file}:{first.origin.line}",
    )


def _conflict(draft: Draft, other: str) -> Problem:
    owner = "the portal (made in the UI)" if other == "ui" else other
    return Problem(
        draft.origin.file,
        draft.origin.line,
        f"{_label(draft.identity)} is already defined by {owner}; not imported from here",
    )


def _record_source(
    session: Session,
    key: str,
    kind: str,
    location: str,
    revision: str | None,
    report: ImportReport,
    now: datetime,
) -> None:
    source = session.scalar(select(CatalogSource).where(CatalogSource.key == key))
    if source is None:
        source = CatalogSource(key=key, kind=kind, location=location)
        session.add(source)
    source.revision = revision
    source.last_imported_at = now
    source.last_report = report.as_json()
