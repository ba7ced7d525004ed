"""Alembic environment: migrates the database the caller configured (sqlalchemy.url)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from quarterdeck.db import Base, make_engine
from quarterdeck.migrations import include_object, load_models

load_models()


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
