"""The append-only audit log: `record()` in the caller's transaction, hash-chained, verifiable, searchable.

Each entry's hash covers its content and the previous entry's hash, so editing, inserting or removing
a row anywhere breaks the chain from there on; `audit_head` remembers the newest hash, so cutting
entries off the end shows too. Appends take the head row's lock first (an UPDATE), which serialises
concurrent writers on PostgreSQL and SQLite alike, so the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from quarterdeck.access import policy
from quarterdeck.access.models import AuditEntry, AuditHead
from quarterdeck.access.schemas import Actor, AuditEntryOut
from quarterdeck.db import bulk_insert
from quarterdeck.errors import Invalid

GENESIS = "0" * 64
VERIFY_BATCH = 2000


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + _canonical(fields)).encode()).hexdigest()


def _hashed_fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "before": entry.before,
        "after": entry.after,
        "note": entry.note,
        "ip": entry.ip,
    }


def _jsonable(value: Any) -> Any:
    """Before/after values as they will read back from a JSON column (dates become strings)."""
    return None if value is None else json.loads(_canonical(value))


@dataclass(frozen=True)
class Change:
    """One change to append: what was done to which object, with its values before and after."""

    action: str
    target: tuple[str, str]
    before: Any = None
    after: Any = None
    note: str | None = None


def record_many(session: Session, actor: Actor, changes: Sequence[Change], *, at: datetime) -> str:
    """Append entries in the caller's transaction (they commit or roll back with the change); the last hash.

    Three statements however many entries: the head row is bumped first (its lock orders concurrent
    writers), then the entries go in and the head takes the last hash.
    """
    count = len(changes)
    last_seq, prev_hash = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + count)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one()
    moment = at.astimezone(UTC)
    rows = []
    for offset, change in enumerate(changes):
        fields = {
            "seq": last_seq - count + 1 + offset,
            "at": moment,
            "actor": actor.label,
            "actor_kind": actor.kind,
            "action": change.action,
            "target_type": change.target[0],
            "target_id": str(change.target[1])[:300],
            "before": _jsonable(change.before),
            "after": _jsonable(change.after),
            "note": change.note,
            "ip": actor.ip,
        }
        digest = entry_hash(prev_hash, fields | {"at": moment.isoformat()})
        rows.append(fields | {"prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    bulk_insert(session, AuditEntry.__table__, rows)  # type: ignore[arg-type]
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev_hash))
    return str(prev_hash)


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    target: tuple[str, str],
    at: datetime,
    before: Any = None,
    after: Any = None,
    note: str | None = None,
) -> str:
    """Append one entry in the caller's transaction; its hash."""
    return record_many(session, actor, [Change(action, target, before, after, note)], at=at)


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify(session: Session) -> Verification:
    """Walk the whole chain; the first entry whose hash or link does not hold is reported."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        batch = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(VERIFY_BATCH)
        ).all()
        if not batch:
            break
        for entry in batch:
            if entry.seq != expected_seq:
                return Verification(False, checked, expected_seq, f"entry {expected_seq} is missing")
            if entry.prev_hash != prev_hash:
                return Verification(
                    False, checked, entry.seq, f"entry {entry.seq} does not follow the one before"
                )
            if entry_hash(prev_hash, _hashed_fields(entry)) != entry.hash:
                return Verification(
                    False, checked, entry.seq, f"entry {entry.seq} was changed after it was written"
                )
            prev_hash, expected_seq, checked = entry.hash, entry.seq + 1, checked + 1
            last_seq = entry.seq
        session.expunge_all()
    head_seq, head_hash = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one()
    if head_seq != checked or head_hash != prev_hash:
        return Verification(
            False, checked, checked + 1, f"the log ends at entry {checked} but {head_seq} were written"
        )
    return Verification(True, checked, None, None)


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    text: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filtered(filters: AuditFilters) -> Select[AuditEntry]:
    query = select(AuditEntry)
    if filters.actor:
        query = query.where(AuditEntry.actor.ilike(_like(filters.actor), escape="\\"))
    if filters.action:
        query = query.where(AuditEntry.action.ilike(_like(filters.action), escape="\\"))
    if filters.target_type:
        query = query.where(AuditEntry.target_type == filters.target_type)
    if filters.target_id:
        query = query.where(AuditEntry.target_id == filters.target_id)
    if filters.text:
        pattern = _like(filters.text)
        query = query.where(
            or_(
                AuditEntry.target_id.ilike(pattern, escape="\\"),
                AuditEntry.note.ilike(pattern, escape="\\"),
                AuditEntry.action.ilike(pattern, escape="\\"),
            )
        )
    if filters.since:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.at < filters.until)
    return query


def out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        actor_kind=entry.actor_kind,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        before=entry.before,
        after=entry.after,
        note=entry.note,
        ip=entry.ip,
        hash=entry.hash,
    )


def search(
    session: Session, filters: AuditFilters, *, page: int = 1, per_page: int = 50
) -> tuple[list[AuditEntryOut], int]:
    """Newest first; `total` counts every match."""
    if page < 1 or per_page < 1:
        raise Invalid("page and per_page start at 1", code="audit.bad_page")
    query = _filtered(filters)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEntry.seq.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return [out(row) for row in rows], total


def entries_for(session: Session, *, target: tuple[str, str]) -> list[AuditEntryOut]:
    rows, _total = search(session, AuditFilters(target_type=target[0], target_id=target[1]), per_page=1000)
    return rows


def export_lines(session: Session, filters: AuditFilters) -> Iterator[str]:
    """Every matching entry, oldest first, one JSON object per line (JSON Lines)."""
    last_seq = 0
    while True:
        rows = session.scalars(
            _filtered(filters).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(VERIFY_BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            yield out(row).model_dump_json() + "\n"
            last_seq = row.seq


# ---------------------------------------------------------------- reading, for those who may


def audit_entries(
    session: Session, actor: Actor, filters: AuditFilters, *, page: int = 1, per_page: int = 50
) -> tuple[list[AuditEntryOut], int]:
    """`search`, for an actor allowed to read the log (admins)."""
    policy.require(actor, "audit.read")
    return search(session, filters, page=page, per_page=per_page)


def audit_export(actor: Actor, sessions: Callable[[], Session], filters: AuditFilters) -> Iterator[str]:
    """`export_lines` from a session of its own, for an actor allowed to read the log. The right is
    checked here, before the first line: a refusal is an error answer, not a cut-off stream."""
    policy.require(actor, "audit.read")

    def lines() -> Iterator[str]:
        with sessions() as session:
            yield from export_lines(session, filters)

    return lines()


def audit_verification(session: Session, actor: Actor) -> Verification:
    """`verify`, for an actor allowed to read the log."""
    policy.require(actor, "audit.read")
    return verify(session)
