"""Read caches of catalog views, valid for one catalog generation.

Every catalog write bumps `catalog_state.generation` in the same transaction, so a cached view is
served only while the generation it was built at is still current. A process re-reads the
generation at most every GENERATION_TTL seconds, and at once after its own writes commit: a change
made through another replica shows within that time, and a cached read costs no query at all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from quarterdeck.catalog.models import CatalogState

T = TypeVar("T")
MAX_ENTRIES = 8192

_entries: OrderedDict[Hashable, object] = OrderedDict()
_lock = Lock()


GENERATION_TTL = 0.1
monotonic = time.monotonic  # a module attribute, so tests can move time
_generations: dict[str, tuple[float, int]] = {}


def _database(session: Session) -> str:
    return str(session.get_bind().engine.url)


def generation(session: Session) -> int:
    database = _database(session)
    now = monotonic()
    seen = _generations.get(database)
    if seen is not None and 0 <= now - seen[0] < GENERATION_TTL:
        return seen[1]
    value = session.scalar(select(CatalogState.generation).where(CatalogState.id == 1)) or 0
    _generations[database] = (now, value)
    return value


def bump_generation(session: Session) -> None:
    """Invalidate every cached view, in the caller's transaction; this process re-reads on commit."""
    session.execute(
        update(CatalogState).where(CatalogState.id == 1).values(generation=CatalogState.generation + 1)
    )
    database = _database(session)
    _generations.pop(database, None)

    def forget(_session: Session) -> None:
        _generations.pop(database, None)

    event.listen(session, "after_commit", forget, once=True)


def peek(session: Session, key: Hashable) -> object | None:
    """The cached value for `key` at the current generation, or None: never builds anything."""
    full_key = (_database(session), generation(session), key)
    with _lock:
        return _entries.get(full_key)


def cached(session: Session, key: Hashable, build: Callable[[], T]) -> T:
    """The value of `build()` for `key` at the current generation of this database."""
    full_key = (_database(session), generation(session), key)
    with _lock:
        if full_key in _entries:
            _entries.move_to_end(full_key)
            return _entries[full_key]  # type: ignore[return-value]
    value = build()
    with _lock:
        _entries[full_key] = value
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value
