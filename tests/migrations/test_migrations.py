"""Migrations: head matches the models, and a downgrade/upgrade round trip works, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from quarterdeck.db import Base, make_engine
from quarterdeck.migrations import downgrade, include_object, load_models, upgrade

load_models()


def test_head_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True, "render_as_batch": True}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_downgrade_then_upgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    downgrade(engine, "base")
    assert "services" not in inspect(engine).get_table_names()
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"services", "teams", "people", "systems", "search_documents", "memberships"} <= tables
    engine.dispose()
