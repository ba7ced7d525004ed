"""Read caches of catalog views, valid for one catalog generation.

Every catalog write bumps `catalog_state.generation` in the same transaction, so a cached view is
served only while the generation it was built at is still current: correct across any number of
replicas sharing the database, at the price of one one-row query per read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from threading import Lock
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from quarterdeck.catalog.models import CatalogState

T = TypeVar("T")
MAX_ENTRIES = 8192

_entries: OrderedDict[Hashable, object] = OrderedDict()
_lock = Lock()


def generation(session: Session) -> int:
    return session.scalar(select(CatalogState.generation).where(CatalogState.id == 1)) or 0


def bump_generation(session: Session) -> None:
    """Invalidate every cached view, in the caller's transaction."""
    session.execute(
        update(CatalogState).where(CatalogState.id == 1).values(generation=CatalogState.generation + 1)
    )


def peek(session: Session, key: Hashable) -> object | None:
    """The cached value for `key` at the current generation, or None: never builds anything."""
    full_key = (str(session.get_bind().engine.url), generation(session), key)
    with _lock:
        return _entries.get(full_key)


def cached(session: Session, key: Hashable, build: Callable[[], T]) -> T:
    """The value of `build()` for `key` at the current generation of this database."""
    full_key = (str(session.get_bind().engine.url), generation(session), key)
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
