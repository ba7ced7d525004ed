"""Every statement that moves a job: enqueue, claim, heartbeat, finish, reap, the operator's retry
and cancel. Each move writes its job_events row in the same statement (PostgreSQL) or transaction.

Statements that differ between SQLite and PostgreSQL differ only here and in figures.py, behind
`dialect_name(session)`. Times come from the caller's clock, never the database's, so a frozen clock
controls everything. The caller owns the transaction: nothing here commits.

The statements a worker runs for every job are built once (per dialect and set of job kinds) with
bound parameters, and reused: building them costs more Python time than running them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Executable,
    Integer,
    Row,
    Select,
    String,
    Table,
    Text,
    Update,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from quarterdeck.db import UTCDateTime, dialect_name
from quarterdeck.errors import Conflict, LeaseLost, NotFound
from quarterdeck.jobs.models import EventReason, Job, JobEvent, JobId
from quarterdeck.jobs.states import JobState, require_move

CHANNEL = "quarterdeck_jobs"
"""The PostgreSQL channel every change that may give workers something to do is announced on."""
DEFAULT_MAX_ATTEMPTS = 5
REAP_LIMIT = 500

jobs = cast(Table, Job.__table__)
events = cast(Table, JobEvent.__table__)

NOW: BindParameter[datetime] = bindparam("now", type_=UTCDateTime())
JOB: BindParameter[int] = bindparam("job_id", type_=JobId)
OWNER: BindParameter[str] = bindparam("owner", type_=String())
NOTE: BindParameter[str] = bindparam("note", type_=Text())
DUE: BindParameter[datetime] = bindparam("due", type_=UTCDateTime())
# No parameter is named like a column of jobs: SQLAlchemy would take it for a value to SET.


@dataclass(frozen=True)
class Claimed:
    """A job a worker holds the lease of, as the claim returned it."""

    id: int
    kind: str
    payload: Any
    attempts: int
    max_attempts: int
    idempotency_key: str
    due_at: datetime
    lease_owner: str


def is_(state: JobState) -> ColumnElement[bool]:
    """`state = 'pending'` with the state written in the SQL, not bound: only then can SQLite, and a
    PostgreSQL generic plan of a prepared statement, use the partial indexes on state."""
    return jobs.c.state == literal_column(f"'{state.value}'")


def at(value: datetime) -> ColumnElement[datetime]:
    return literal(value, UTCDateTime())


def notify(session: Session) -> None:
    """Wake listening workers when this transaction commits (PostgreSQL folds repeats into one)."""
    if dialect_name(session) == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


def _returning(statement: Update, note: ColumnElement[Any] = NOTE, *extra: ColumnElement[Any]) -> Update:
    """What every move returns: each job moved, the state it moved to, and its event's note."""
    return statement.returning(jobs.c.id, jobs.c.state, note.label("event_note"), *extra)


@cache
def _logged(dialect: str, statement: Update, from_: JobState, reason: EventReason) -> Executable:
    """PostgreSQL: `statement` in a CTE that also writes the job_events rows of the jobs it moved,
    one round trip. SQLite runs it as it is, and _move inserts the events after."""
    if dialect != "postgresql":
        return statement
    moved = statement.cte("moved")
    logged = insert(events).from_select(
        ["job_id", "from_state", "to_state", "reason", "note", "at"],
        select(
            moved.c.id,
            literal_column(f"'{from_.value}'"),
            moved.c.state,
            literal_column(f"'{reason.value}'"),
            moved.c.event_note,
            NOW,
        ),
    )
    return select(moved).add_cte(logged.cte("logged"))


def _move(
    session: Session, statement: Update, *, from_: JobState, reason: EventReason, params: dict[str, Any]
) -> Sequence[Row[Any]]:
    """Run a guarded UPDATE of jobs (built once, returning as _returning says) and write the
    job_events row of each job it moved. Returns the moved rows."""
    dialect = dialect_name(session)
    rows = session.execute(_logged(dialect, statement, from_, reason), params).all()
    if dialect != "postgresql" and rows:
        logged = [
            {
                "job_id": row.id,
                "from_state": from_.value,
                "to_state": row.state,
                "reason": reason.value,
                "note": row.event_note,
                "at": params["now"],
            }
            for row in rows
        ]
        session.execute(insert(events), logged)
    return rows


def enqueue(
    session: Session,
    kind: str,
    payload: Any,
    *,
    now: datetime,
    due_at: datetime | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> tuple[int, bool]:
    """The job's id and whether this call created it. Idempotent on the key: a second enqueue with the
    same key returns the first job (even one that raced it from another transaction)."""
    key = idempotency_key or f"{kind}:{uuid.uuid4().hex}"
    values = {
        "kind": kind,
        "payload": payload,
        "state": JobState.PENDING.value,
        "due_at": due_at or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "idempotency_key": key,
        "version": 1,
        "created_at": now,
    }
    dialect = postgresql if dialect_name(session) == "postgresql" else sqlite
    statement = (
        dialect.insert(jobs)
        .values(values)
        .on_conflict_do_nothing(index_elements=[jobs.c.idempotency_key])
        .returning(jobs.c.id)
    )
    created = session.execute(statement).scalar_one_or_none()
    if created is not None:
        notify(session)
        return created, True
    existing = session.execute(select(jobs.c.id, jobs.c.kind).where(jobs.c.idempotency_key == key)).one()
    if existing.kind != kind:
        raise Conflict(
            f"idempotency key {key!r} already names a {existing.kind!r} job, not a {kind!r} one",
            code="job.key_taken",
            details={"job": existing.id, "kind": existing.kind},
        )
    return int(existing.id), False


def _chosen(dialect: str, candidates: Select[tuple[int]]) -> ColumnElement[bool]:
    """`jobs.id IN (candidates)`, the candidates picked once and, on PostgreSQL, locked.

    PostgreSQL: FOR UPDATE SKIP LOCKED passes over rows another transaction holds, so concurrent
    workers never wait for one another. The candidates go in a MATERIALIZED CTE so they are computed
    exactly once: as a plain IN subquery the planner may rescan it while the UPDATE runs, and a rescan
    skips the rows this very statement has just changed and picks further ones, past the LIMIT.
    SQLite: one writer at a time (BEGIN IMMEDIATE) already keeps claimers apart.
    """
    if dialect == "postgresql":
        locked = candidates.with_for_update(skip_locked=True).cte("candidates").prefix_with("MATERIALIZED")
        return jobs.c.id.in_(select(locked.c.id))
    return jobs.c.id.in_(candidates.scalar_subquery())


def _expiry(kinds: tuple[str, ...]) -> ColumnElement[datetime]:
    """A job's lease expiry by its kind: parameter expires_<n> for the n-th of `kinds`."""
    whens = {kind: bindparam(f"expires_{n}", type_=UTCDateTime()) for n, kind in enumerate(kinds)}
    return case(whens, value=jobs.c.kind)


def _expiries(now: datetime, leases: Mapping[str, float]) -> dict[str, datetime]:
    return {f"expires_{n}": now + timedelta(seconds=leases[kind]) for n, kind in enumerate(sorted(leases))}


@cache
def _claim_statement(dialect: str, kinds: tuple[str, ...]) -> Update:
    picked = (
        select(jobs.c.id)
        .where(is_(JobState.PENDING), jobs.c.due_at <= NOW, jobs.c.kind.in_(kinds))
        .order_by(jobs.c.due_at, jobs.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    statement = (
        update(jobs)
        .where(_chosen(dialect, picked), is_(JobState.PENDING))
        .values(
            state=JobState.RUNNING.value,
            lease_owner=OWNER,
            lease_expires_at=_expiry(kinds),
            heartbeat_at=NOW,
            started_at=NOW,
            version=jobs.c.version + 1,
        )
    )
    fields = (jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts, jobs.c.idempotency_key)
    return _returning(statement, OWNER, *fields, jobs.c.due_at)


def claim(
    session: Session, owner: str, now: datetime, *, leases: Mapping[str, float], limit: int
) -> list[Claimed]:
    """Take up to `limit` due jobs of the kinds in `leases` (kind -> lease seconds), oldest due first,
    each leased to `owner` for its kind's lease seconds. See _chosen for how claimers keep apart."""
    if not leases:
        return []
    statement = _claim_statement(dialect_name(session), tuple(sorted(leases)))
    params = {"now": now, "owner": owner, "limit": limit, **_expiries(now, leases)}
    rows = _move(session, statement, from_=JobState.PENDING, reason=EventReason.CLAIMED, params=params)
    claimed = [
        Claimed(r.id, r.kind, r.payload, r.attempts, r.max_attempts, r.idempotency_key, r.due_at, owner)
        for r in rows
    ]
    return sorted(claimed, key=lambda job: (job.due_at, job.id))


def heartbeat(session: Session, owners: Sequence[str], now: datetime, *, leases: Mapping[str, float]) -> int:
    """Extend the leases of every job `owners` still hold; the number of jobs extended."""
    if not owners or not leases:
        return 0
    statement = (
        update(jobs)
        .where(is_(JobState.RUNNING), jobs.c.lease_owner.in_(owners))
        .values(lease_expires_at=_expiry(tuple(sorted(leases))), heartbeat_at=NOW)
        .returning(jobs.c.id)
    )
    return len(session.execute(statement, {"now": now, **_expiries(now, leases)}).all())


SETS: dict[str, Any] = {
    "finished": {"finished_at": NOW},
    "due": {"due_at": DUE},
    "counted": {"attempts": jobs.c.attempts + 1},
    "error": {"last_error": NOTE},
}
"""What a move out of `running` may set besides the state, by name, for _finish_statement."""


@cache
def _finish_statement(to: JobState, sets: tuple[str, ...]) -> Update:
    values: dict[str, Any] = {}
    for name in sets:
        values |= SETS[name]
    statement = (
        update(jobs)
        .where(jobs.c.id == JOB, is_(JobState.RUNNING), jobs.c.lease_owner == OWNER)
        .values(state=to.value, lease_owner=None, lease_expires_at=None, version=jobs.c.version + 1, **values)
    )
    return _returning(statement)


def _finish_leased(
    session: Session,
    job_id: int,
    owner: str,
    now: datetime,
    to: JobState,
    reason: EventReason,
    *sets: str,
    note: str | None = None,
    due_at: datetime | None = None,
) -> None:
    """The guarded move out of `running`: only while `owner` still holds the lease. Zero rows means the
    lease was taken over (or the job cancelled): LeaseLost, and the caller's transaction rolls back."""
    params = {"job_id": job_id, "owner": owner, "now": now, "note": note}
    if due_at is not None:
        params["due"] = due_at
    moved = _move(session, _finish_statement(to, sets), from_=JobState.RUNNING, reason=reason, params=params)
    if not moved:
        raise LeaseLost(
            f"job {job_id} is no longer held by {owner}: its lease expired or it was cancelled",
            details={"job": job_id, "owner": owner},
        )


def complete(session: Session, job_id: int, owner: str, now: datetime) -> None:
    _finish_leased(session, job_id, owner, now, JobState.SUCCEEDED, EventReason.SUCCEEDED, "finished")


def retry(session: Session, job_id: int, owner: str, now: datetime, *, due_at: datetime, error: str) -> None:
    """A failed attempt with attempts left: back to pending at `due_at`, counted, its error kept."""
    reason = EventReason.ERROR
    _finish_leased(
        session,
        job_id,
        owner,
        now,
        JobState.PENDING,
        reason,
        "due",
        "counted",
        "error",
        note=error,
        due_at=due_at,
    )
    notify(session)


def park(session: Session, job_id: int, owner: str, now: datetime, *, error: str, permanent: bool) -> None:
    """A failed attempt with no attempts left (or a permanent failure): failed, with its error."""
    reason = EventReason.PERMANENT_FAILURE if permanent else EventReason.ERROR
    _finish_leased(
        session, job_id, owner, now, JobState.FAILED, reason, "finished", "counted", "error", note=error
    )


def postpone(
    session: Session,
    job_id: int,
    owner: str,
    now: datetime,
    *,
    due_at: datetime | None,
    reason: EventReason,
    note: str | None = None,
) -> None:
    """Back to pending without counting an attempt: a handler's RetryLater (at `due_at`), or a
    stopping worker handing back a job it had not started (`due_at` None keeps its due time)."""
    sets = () if due_at is None else ("due",)
    _finish_leased(session, job_id, owner, now, JobState.PENDING, reason, *sets, note=note, due_at=due_at)
    notify(session)


@cache
def _reap_statement(dialect: str) -> Update:
    expired = (
        select(jobs.c.id)
        .where(is_(JobState.RUNNING), jobs.c.lease_expires_at < NOW)
        .order_by(jobs.c.lease_expires_at)
        .limit(REAP_LIMIT)
    )
    last = jobs.c.attempts + 1 >= jobs.c.max_attempts
    lost = literal("lease expired: ") + func.coalesce(jobs.c.lease_owner, "?") + " stopped renewing it"
    statement = (
        update(jobs)
        .where(_chosen(dialect, expired), is_(JobState.RUNNING), jobs.c.lease_expires_at < NOW)
        .values(
            state=case((last, JobState.FAILED.value), else_=JobState.PENDING.value),
            finished_at=case((last, NOW), else_=None),
            attempts=jobs.c.attempts + 1,
            last_error=lost,
            lease_owner=None,
            lease_expires_at=None,
            version=jobs.c.version + 1,
        )
    )
    return _returning(statement, jobs.c.last_error)


def reap(session: Session, now: datetime) -> list[tuple[int, JobState]]:
    """Running jobs whose lease expired (their worker died or hung) go back to pending with the attempt
    counted, or to failed when that was their last attempt. Returns each job moved and its new state."""
    statement = _reap_statement(dialect_name(session))
    rows = _move(
        session, statement, from_=JobState.RUNNING, reason=EventReason.LEASE_EXPIRED, params={"now": now}
    )
    moved = [(row.id, JobState(row.state)) for row in rows]
    if any(state is JobState.PENDING for _, state in moved):
        notify(session)
    return moved


@cache
def _operator_statement(from_: JobState, to: JobState) -> Update:
    retried = {"due_at": NOW, "attempts": 0, "finished_at": None}
    values = retried if to is JobState.PENDING else {"finished_at": NOW}
    statement = (
        update(jobs)
        .where(jobs.c.id == JOB, is_(from_))
        .values(state=to.value, lease_owner=None, lease_expires_at=None, version=jobs.c.version + 1, **values)
    )
    return _returning(statement)


def _operator_move(session: Session, job_id: int, now: datetime, to: JobState, reason: EventReason) -> None:
    """An operator's move: checked against the moves operators may ask for, then one UPDATE guarded on
    the state that was checked. When a worker moved the job in between, the guard misses and the move
    is checked again from the new state (a retry of a job that has just started running is refused)."""
    for _ in range(3):
        current = JobState(get(session, job_id).state)
        require_move(job_id, current, to, operator=True)
        params = {"job_id": job_id, "now": now, "note": None}
        if _move(session, _operator_statement(current, to), from_=current, reason=reason, params=params):
            return
    raise Conflict(f"job {job_id} keeps changing state; try again", code="job.busy", details={"job": job_id})


def retry_now(session: Session, job_id: int, now: datetime) -> None:
    """An operator's retry of a parked or cancelled job: pending, due now, with its attempts afresh."""
    _operator_move(session, job_id, now, JobState.PENDING, EventReason.RETRIED)
    notify(session)


def cancel(session: Session, job_id: int, now: datetime) -> None:
    """An operator's cancel. Cancelling a running job takes its lease away: whatever its handler writes
    is rolled back when it tries to complete."""
    _operator_move(session, job_id, now, JobState.CANCELLED, EventReason.CANCELLED)


def get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"no job {job_id}", code="job.not_found", details={"job": job_id})
    return job
