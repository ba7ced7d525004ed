"""Alembic environment: migrates the database the caller configured (sqlalchemy.url)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import quarterdeck.catalog.models  # noqa: F401 - registers the catalog tables on Base.metadata
from quarterdeck.db import Base, make_engine

SEARCH_OBJECTS = {"search_fts", "search_trigrams"}


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Search machinery made by raw SQL (FTS5 tables, tsvector column, trigram index) is not in the models."""
    if type_ == "table" and name is not None and (name in SEARCH_OBJECTS or name.startswith("search_fts_")):
        return False
    if type_ == "table" and name is not None and name.startswith("search_trigrams_"):
        return False
    if type_ == "column" and name == "tsv":
        return False
    return not (type_ == "index" and name in {"ix_search_documents_tsv", "ix_search_documents_trgm"})


def run_migrations() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_object=include_object,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
