"""Engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, Table, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.inspection import inspect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from quarterdeck.config import Settings

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite (which drops the zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


RUNTIME_KEY = "quarterdeck.runtime"
"""The key of `Session.info` under which sessions made by a Runtime (runtime.py) find it."""
WRITER = "quarterdeck_writer"
"""Execution option of a session that will write: on SQLite its transaction starts with BEGIN IMMEDIATE."""


def _sqlite_connect(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is switched off: _SqliteWriters.begin says how each one starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


class _SqliteWriters:
    """Writers of one engine take turns in this process before they ask SQLite for its write lock.

    SQLite's own wait for a busy lock sleeps in growing steps (up to 100 ms) whatever happens
    meanwhile, so writers of one process that queue there lose most of their time asleep; here they
    queue on a lock that wakes the next one as soon as the last commits. Other processes still meet
    at SQLite's lock, under its busy timeout.
    """

    def __init__(self, timeout: float) -> None:
        self.lock = threading.Lock()
        self.timeout = timeout

    def begin(self, connection: Connection) -> None:
        """A writer takes SQLite's write lock at BEGIN, before it reads: what it checks is then what
        it changes, and two writers queue instead of one failing on a stale snapshot. Readers never wait."""
        if not connection.get_execution_options().get(WRITER, False):
            connection.exec_driver_sql("BEGIN")
            return
        if not self.lock.acquire(timeout=self.timeout):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, Exception("database is locked: other writers held it too long")
            )
        connection.info[_HOLDS_TURN] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(connection)
            raise

    def end(self, connection: Connection) -> None:
        if connection.info.pop(_HOLDS_TURN, False):
            self.lock.release()


_HOLDS_TURN = "quarterdeck_writer_turn"


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 20,
    pool_timeout: float = 30.0,
    busy_timeout: float = 10.0,
) -> Engine:
    """An engine for SQLite (WAL, foreign keys on, writers BEGIN IMMEDIATE) or PostgreSQL, with a
    pool of `pool_size` connections (and half as many again in overflow); creates the SQLite folder."""
    parsed = make_url(url)
    pool = {"pool_size": pool_size, "max_overflow": pool_size // 2, "pool_timeout": pool_timeout}
    if parsed.get_backend_name() == "sqlite":
        in_memory = not parsed.database or parsed.database == ":memory:"
        if not in_memory:
            Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False}, **({} if in_memory else pool)
        )
        event.listen(engine, "connect", _sqlite_connect(int(busy_timeout * 1000)))
        writers = _SqliteWriters(busy_timeout)
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "commit", writers.end)
        event.listen(engine, "rollback", writers.end)
        if not in_memory:
            with engine.connect() as conn:
                conn.connection.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
        return engine
    # A writer waits at most busy_timeout for a row lock; then it is answered 503, never left hanging.
    lock_timeout = {"options": f"-c lock_timeout={int(busy_timeout * 1000)}"}
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=lock_timeout, **pool)


def engine_for(settings: Settings) -> Engine:
    """The engine every process of an install uses, sized by its settings."""
    return make_engine(
        settings.database_url,
        echo=settings.sql_echo,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_seconds,
        busy_timeout=settings.db_busy_timeout_seconds,
    )


def database_location(url: str) -> str:
    """Where a database URL points, for messages: a SQLite file's absolute path, else the URL
    without its password."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=True)


def unmigrated_database(url: str) -> str | None:
    """Why the database at `url` cannot be used yet, as "the database at ... does not exist yet" or
    "... has no tables yet" (never migrated), or None when it has been migrated. A SQLite file that
    is not there is not created (connecting would create it). Raises DatabaseError when the
    database cannot be reached or read."""
    parsed = make_url(url)
    where = database_location(url)
    sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if sqlite_file and not Path(where).is_file():
        return f"the database at {where} does not exist yet"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            migrated = inspect(connection).has_table("alembic_version")
    finally:
        engine.dispose()
    return None if migrated else f"the database at {where} has no tables yet"


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def writer_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions like `factory`'s whose transactions are writers (BEGIN IMMEDIATE on SQLite)."""
    engine = factory.kw["bind"]
    return sessionmaker(
        bind=engine.execution_options(**{WRITER: True}), expire_on_commit=False, autoflush=False
    )


def lock_row(session: Session, row: Any) -> None:
    """Re-read `row` as it is now and hold it until the transaction ends: FOR UPDATE on PostgreSQL;
    on SQLite the writer's BEGIN IMMEDIATE already holds the whole database, so a re-read suffices.
    Checks made after this see what the write will change: no lost update between them."""
    session.refresh(row, with_for_update=dialect_name(session) == "postgresql")


def hold_lock(session: Session, name: str) -> None:
    """Take the lock called `name` until the transaction ends, so writers of one kind take turns:
    a transaction-level advisory lock on PostgreSQL; nothing on SQLite, whose writer transactions
    (BEGIN IMMEDIATE) already run one at a time."""
    if dialect_name(session) == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


def process_state(session: Session, name: str, make: Callable[[], T]) -> T | None:
    """The per-process object `name` of the runtime that made this session (made on first use), or
    None for a session made without one (a bare sessionmaker in a script or test)."""
    runtime = session.info.get(RUNTIME_KEY)
    if runtime is None:
        return None
    found: T = runtime.state(name, make)
    return found


def dialect_name(session: Session) -> str:
    """'sqlite' or 'postgresql': the one switch for dialect-specific statements."""
    return session.get_bind().dialect.name


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One use case that writes, one transaction: commit on success, roll back on any error. On
    SQLite it holds the write lock from its first statement (see _SqliteWriters)."""
    with factory() as session, session.begin():
        session.connection(execution_options={WRITER: True})
        yield session


def retrying_on_race(session: Session, work: Callable[[], T], *, attempts: int = 3) -> T:
    """Run `work` in a transaction of `session`; when a concurrent writer broke a unique constraint
    first (both checked, the other committed), run it again: the retry sees what won, so an
    idempotent request gets the answer a retry gets, and any other the service's own clear Conflict."""
    for attempt in range(1, attempts + 1):
        try:
            with session.begin():
                return work()
        except IntegrityError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows without RETURNING: COPY on PostgreSQL (an INSERT with thousands of
    parameters costs seconds to prepare there), one executemany INSERT on SQLite."""
    if not rows:
        return
    if dialect_name(session) != "postgresql":
        session.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    as_json = {column for column in columns if isinstance(table.c[column].type, JSON)}
    connection = session.connection().connection.driver_connection
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    try:
        with connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[column])
                        if column in as_json and row[column] is not None
                        else row[column]
                        for column in columns
                    ]
                )
    except psycopg.errors.IntegrityError as exc:
        # COPY runs below SQLAlchemy: raise what any other insert raises, so callers handle one error.
        raise IntegrityError(statement, None, exc) from exc
