"""Migration 0010 on SQLite and PostgreSQL: the stars table comes and goes, keyed by user and entity,
and a user's stars go with the user."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from quarterdeck.db import make_engine
from quarterdeck.migrations import downgrade, upgrade

T0 = "2026-12-03 08:00:00"


def test_0010_adds_stars_unique_per_user_and_entity(db_url: str) -> None:
    engine = make_engine(db_url)
    downgrade(engine, "0009")
    assert "stars" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (email, name, role, active, created_at)"
                " VALUES ('a@x.example', 'A', 'member', true, :t)"
            ),
            {"t": T0},
        )

    upgrade(engine, "0010")

    assert inspect(engine).get_pk_constraint("stars")["constrained_columns"] == [
        "user_id",
        "entity_kind",
        "entity_slug",
    ]
    star = text(
        "INSERT INTO stars (user_id, entity_kind, entity_slug, created_at)"
        " VALUES (1, 'service', 'checkout', :t)"
    )
    with engine.begin() as conn:
        conn.execute(star, {"t": T0})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(star, {"t": T0})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users"))
        assert conn.execute(text("SELECT count(*) FROM stars")).scalar_one() == 0

    downgrade(engine, "0009")
    assert "stars" not in inspect(engine).get_table_names()
    upgrade(engine)
    engine.dispose()
