"""Applying one source's descriptors to the catalog: create, update, keep last good, remove.

Rules, per source:
- an entity another source (or the UI) already defines is refused with a conflict problem;
- an entity edited in the UI since it was imported stays as the UI left it;
- an unchanged descriptor (same content hash) writes nothing;
- a refused descriptor, or a file with any problem, keeps the last good version of the entities it
  used to define and attaches the problems to them, where their pages show them;
- an entity whose descriptor is gone (file deleted, or a clean file no longer defines it) is removed;
- files a sync did not read because they did not change (`kept`, see incremental.py) keep the
  entities they define exactly as they are: only the rows of the files read, and of the files the
  source had before and no longer keeps, are looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, lazyload

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import readmodel, references, store
from quarterdeck.catalog.descriptors import Draft, FileResult, Problem
from quarterdeck.catalog.models import CatalogSource, Person, Service, System, Team

ANALYZE_AFTER = 1000  # rows written by one import before the planner's statistics are refreshed
AUDITED_CHANGES = 1000
"""At most this many changed files (and errors) are named in an import's audit entry."""
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
    files_read: int = 0
    """Files read and parsed for this import; `files` counts the kept ones too."""
    catalog_dependent: set[str] = field(default_factory=set)
    """Files whose outcome depends on the rest of the catalog (an entity another source defines, or
    one edited in the portal), not only on their text: a sync reads them again even when unchanged."""
    next_sync_at: datetime | None = None
    """Git sources: when the next periodic sync is due (None: they do not sync on their own)."""

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


@dataclass(frozen=True)
class Kept:
    """What an incremental sync did not read because it did not change (incremental.py).

    `outcomes`: each kept file's outcome when it was last read; `entities`: how many entities they
    define; `others`: the files the source had at its last import that are neither kept nor read now
    (deleted, or no longer reached): their entities are looked at, and removed unless read again.
    """

    outcomes: dict[str, str]
    entities: int
    others: frozenset[str]


def _owned_rows(
    session: Session, source: str, files: frozenset[str] | None = None
) -> dict[tuple[str, str], store.Entity]:
    """The source's entities (those edited in the portal included); only those from `files` (and
    the edited ones) when given."""
    rows: dict[tuple[str, str], store.Entity] = {}
    for model in ENTITY_MODELS:
        mine = model.source == source
        if files is not None and len(files) <= store.CHUNK:
            mine = and_(mine, model.source_file.in_(sorted(files)))
        query = select(model).where(or_(mine, model.detached_from == source)).options(lazyload("*"))
        for row in session.scalars(query):
            entity = cast(store.Entity, row)
            if files is None or entity.detached_from == source or entity.source_file in files:
                rows[store.identity_of(entity)] = entity
    return rows


def count_owned(session: Session, source: str) -> int:
    """How many entities the source defines now (not counting those edited in the portal)."""
    return sum(
        session.execute(select(func.count()).select_from(model).where(model.source == source)).scalar_one()
        for model in ENTITY_MODELS
    )


def _claimed_elsewhere(
    session: Session,
    drafts: list[Draft],
    source: str,
    owned: dict[tuple[str, str], store.Entity] | None = None,
) -> dict[tuple[str, str], str]:
    """Identities among `drafts` already defined by another source, with that source.

    With `owned` (an incremental sync, which loaded only the rows of the files it looks at), the
    source's own rows for those identities are added to it, whichever file defined them before: a
    draft then updates its row, never inserts a second one.
    """
    identities = {draft.identity for draft in drafts}
    wanted: dict[str, set[str]] = {}
    for draft in drafts:
        table, key = draft.identity
        wanted.setdefault(table, set()).add(key.split(":", 1)[1] if table == "service" else key)
    claimed: dict[tuple[str, str], str] = {}
    for table, slugs in wanted.items():
        model = store.MODELS[table]
        ordered = sorted(slugs)
        for start in range(0, len(ordered), store.CHUNK):
            conditions: list[ColumnElement[bool]] = [model.slug.in_(ordered[start : start + store.CHUNK])]
            if owned is None:
                conditions += [
                    model.source != source,
                    or_(model.detached_from.is_(None), model.detached_from != source),
                ]
            for row in session.scalars(select(model).where(*conditions)):
                entity = cast(store.Entity, row)
                identity = store.identity_of(entity)
                if entity.source != source and entity.detached_from != source:
                    claimed[identity] = entity.source
                elif owned is not None and identity in identities:
                    owned.setdefault(identity, entity)
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
    kept: Kept | None = None,
    strict_references: bool = False,
) -> ImportReport:
    """Make the catalog match what this source says now. Never raises for bad descriptors.

    A reference of an entity written now that names nothing the catalog will have is a notice;
    with `strict_references` an error, and that entity is not applied (see `_check_references`)."""
    readmodel.lock_catalog(session)
    report = ImportReport(
        source=key,
        revision=revision,
        files=len(results) + (len(kept.outcomes) if kept else 0),
        ignored_files=ignored_files,
        files_read=len(results),
    )
    report.notices.extend(notices or [])
    if kept is not None:
        report.outcomes.update(kept.outcomes)
        report.entities += kept.entities
        report.unchanged += kept.entities
    touched = None if kept is None else kept.others | {result.file for result in results}
    owned = _owned_rows(session, key, touched)
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
    claimed = _claimed_elsewhere(session, list(drafts.values()), key, None if kept is None else owned)
    candidates: dict[tuple[str, str], store.Write] = {}
    for identity, draft in drafts.items():
        if identity in claimed:
            report.errors.append(_conflict(draft, claimed[identity]))
            report.catalog_dependent.add(draft.origin.file)
            continue
        row = owned.get(identity)
        if row is not None and row.detached_from == key:
            report.entities += 1
            report.catalog_dependent.add(draft.origin.file)
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
            report.entities += 1
            report.unchanged += 1
            continue
        candidates[identity] = store.Write(draft.entity, draft.origin, content_hash, row)
    leaving = _leaving(owned, drafts, failed, file_problems, key)
    found = _check_references(session, candidates, drafts, leaving, strict=strict_references)
    refused = {reference.identity for reference in found} if strict_references else set()
    writes = [write for identity, write in candidates.items() if identity not in refused]
    for write in writes:
        report.entities += 1
        report.created += write.row is None
        report.updated += write.row is not None
    store.save(session, writes, source=key, now=now)
    if len(writes) >= ANALYZE_AFTER:
        store.refresh_statistics(session)
    for reference in references.with_suggestions(session, found):
        located = Problem(reference.file or "", reference.line, reference.sentence, reference.field)
        if not strict_references:
            report.notices.append(located)
            continue
        report.errors.append(located)
        report.catalog_dependent.add(located.file)
        failed.setdefault(reference.identity, []).append(located)
        drafts.pop(reference.identity, None)
    for identity, row in owned.items():
        if identity in leaving:
            store.remove(session, row)
            report.removed += 1
        elif identity not in drafts and row.detached_from != key:
            stale = failed.get(identity) or file_problems.get(row.source_file or "") or []
            store.record_import_errors(session, row, [problem.as_dict() for problem in stale])
    _record_source(session, key, kind, location, revision, report, now)
    session.flush()
    return report


def _leaving(
    owned: dict[tuple[str, str], store.Entity],
    drafts: dict[tuple[str, str], Draft],
    failed: dict[tuple[str, str], list[Problem]],
    file_problems: dict[str, list[Problem]],
    key: str,
) -> set[tuple[str, str]]:
    """The source's entities its descriptors no longer define: removed, unless a problem with the
    file (or the descriptor) that defined them keeps their last good version."""
    return {
        identity
        for identity, row in owned.items()
        if identity not in drafts
        and row.detached_from != key
        and not (failed.get(identity) or file_problems.get(row.source_file or ""))
    }


def _check_references(
    session: Session,
    candidates: dict[tuple[str, str], store.Write],
    drafts: dict[tuple[str, str], Draft],
    leaving: set[tuple[str, str]],
    *,
    strict: bool,
) -> list[references.Dangling]:
    """The dangling references of the entities about to be written, against the catalog as this
    import will leave it: the source's other entities count, those it removes do not.

    Strict, an entity with one is not applied (its last good version, if any, stays, showing the
    error): then what only it would have defined no longer counts either, so the check runs again
    until no more entities are refused."""
    refused: set[tuple[str, str]] = set()
    found: list[references.Dangling] = []
    while True:
        writing = {identity: w for identity, w in candidates.items() if identity not in refused}
        replaced = leaving | {identity for identity, w in writing.items() if w.row is not None}
        defined = [d.entity for identity, d in drafts.items() if identity not in refused]
        after = references.overlay(defined, replaced)
        located = [Draft(w.entity, w.origin) for w in writing.values() if w.origin is not None]
        more = references.dangling(session, located, after=after)
        found += more
        if not strict or not more:
            return found
        refused |= {reference.identity for reference in more}


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
        source = CatalogSource(key=key, kind=kind, location=location, generation=0)
        session.add(source)
    source.revision = revision
    source.last_imported_at = now
    source.last_report = report.as_json()
    source.generation += 1


def audit_import(
    session: Session,
    actor: Actor,
    report: ImportReport,
    *,
    at: datetime,
    action: str = "catalog.import",
    only_changes: bool = False,
) -> None:
    """One audit entry for the import: its counts and the files whose outcome was not "unchanged".
    With `only_changes` (periodic syncs, every few minutes) only when it changed the catalog."""
    if only_changes and not (report.created or report.updated or report.removed):
        return
    changes = {key: outcome for key, outcome in report.outcomes.items() if outcome != "unchanged"}
    if not (changes or report.errors):
        return
    summary = {k: v for k, v in report.as_json().items() if k not in {"outcomes", "notices"}}
    summary["errors"] = summary["errors"][:AUDITED_CHANGES]
    access.record(
        session,
        actor,
        action,
        target=("source", report.source),
        at=at,
        after=summary | {"files_changed": dict(sorted(changes.items())[:AUDITED_CHANGES])},
    )
