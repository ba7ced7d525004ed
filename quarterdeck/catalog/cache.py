"""Per-process caches of things drawn from the whole catalog (a service's dependency graph, the
spelling vocabulary of search), valid for one catalog generation. Entities are not cached here:
their answers are materialized at write time (readmodel.py).

Every catalog write bumps `catalog_state.generation` in the same transaction, so a cached value is
served only while the generation it was built at is still current. A process re-reads the
generation at most every GENERATION_TTL seconds, and at once after its own writes commit: a change
made through another replica shows within that time, and a cached read costs no query at all.
A session made without a runtime (a bare sessionmaker) caches nothing: every read is built.
A session that wrote keeps what it builds to itself until its transaction ends: built from rows
not committed yet, it must not outlive a rollback in the shared cache.
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
from quarterdeck.db import process_state

T = TypeVar("T")
MAX_ENTRIES = 8192
GENERATION_TTL = 0.1
STATE_NAME = "catalog.view-cache"
monotonic = time.monotonic  # a module attribute, so tests can move time
WRITTEN = "catalog.written-views"
"""session.info key: what a session that wrote built, kept to its own transaction."""
LISTENING = "catalog.written-views-listening"


class ViewCache:
    """Built views by (generation, key), least recently used dropped past MAX_ENTRIES."""

    def __init__(self) -> None:
        self.entries: OrderedDict[Hashable, object] = OrderedDict()
        self.lock = Lock()
        self.generation: tuple[float, int] | None = None


def _cache_of(session: Session) -> ViewCache | None:
    return process_state(session, STATE_NAME, ViewCache)


def generation(session: Session, views: ViewCache) -> int:
    now = monotonic()
    seen = views.generation
    if seen is not None and 0 <= now - seen[0] < GENERATION_TTL:
        return seen[1]
    value = session.scalar(select(CatalogState.generation).where(CatalogState.id == 1)) or 0
    views.generation = (now, value)
    return value


def bump_generation(session: Session) -> None:
    """Invalidate every cached view, in the caller's transaction; this process re-reads on commit."""
    session.execute(
        update(CatalogState).where(CatalogState.id == 1).values(generation=CatalogState.generation + 1)
    )
    if not session.info.get(LISTENING):
        event.listen(session, "after_commit", _end_of_write)
        event.listen(session, "after_rollback", _end_of_write)
        session.info[LISTENING] = True
    session.info[WRITTEN] = {}
    views = _cache_of(session)
    if views is None:
        return
    views.generation = None

    def forget(_session: Session) -> None:
        views.generation = None

    event.listen(session, "after_commit", forget, once=True)


def cached(session: Session, key: Hashable, build: Callable[[], T]) -> T:
    """The value of `build()` for `key` at the current generation of the catalog."""
    written: dict[Hashable, object] | None = session.info.get(WRITTEN)
    if written is not None:
        if key not in written:
            written[key] = build()
        return written[key]  # type: ignore[return-value]
    views = _cache_of(session)
    if views is None:
        return build()
    full_key = (generation(session, views), key)
    with views.lock:
        if full_key in views.entries:
            views.entries.move_to_end(full_key)
            return views.entries[full_key]  # type: ignore[return-value]
    value = build()
    with views.lock:
        views.entries[full_key] = value
        while len(views.entries) > MAX_ENTRIES:
            views.entries.popitem(last=False)
    return value


def _end_of_write(session: Session) -> None:
    session.info.pop(WRITTEN, None)
