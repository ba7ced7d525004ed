"""Star statements: the guarded insert (one branch per dialect), removal, and reads by user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from quarterdeck.db import dialect_name
from quarterdeck.home.models import Star


def insert_star(session: Session, user_id: int, kind: str, slug: str, *, at: datetime) -> bool:
    """Add a star unless the user has it already; whether this statement added it. The unique key
    guards it in the database (INSERT ... ON CONFLICT DO NOTHING, spelt by each dialect), so a star
    another transaction added first is no error: racing requests both get the idempotent answer."""
    values = {"user_id": user_id, "entity_kind": kind, "entity_slug": slug, "created_at": at}
    if dialect_name(session) == "postgresql":
        statement: Any = postgresql.insert(Star).values(values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(Star).values(values).on_conflict_do_nothing()
    # RETURNING says whether a row went in: psycopg reports no row count for INSERT ... ON CONFLICT.
    return session.execute(statement.returning(Star.user_id)).first() is not None


def delete_star(session: Session, user_id: int, kind: str, slug: str) -> bool:
    """Remove a star; whether there was one."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(Star).where(Star.user_id == user_id, Star.entity_kind == kind, Star.entity_slug == slug)
    )
    return result.rowcount == 1


def star_of(session: Session, user_id: int, kind: str, slug: str) -> Star | None:
    return session.get(Star, (user_id, kind, slug))


def count_of(session: Session, user_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Star).where(Star.user_id == user_id)) or 0


def stars_of(session: Session, user_id: int, *, kind: str | None = None, limit: int) -> list[Star]:
    """A user's stars, the newest first (a user has at most the cap of them)."""
    query = select(Star).where(Star.user_id == user_id)
    if kind is not None:
        query = query.where(Star.entity_kind == kind)
    return list(session.scalars(query.order_by(Star.created_at.desc(), Star.entity_slug).limit(limit)))
