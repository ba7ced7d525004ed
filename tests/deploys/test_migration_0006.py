"""Migration 0006 on a database that holds data, on SQLite and PostgreSQL: deploys recorded before it get
the first event of their timeline, approvals become change requests of a service (key and version kept),
and its downgrade gives the old tables back with their rows."""

from __future__ import annotations

import json

from sqlalchemy import text

from quarterdeck.db import make_engine
from quarterdeck.migrations import downgrade, upgrade

T0 = "2026-11-01 10:00:00"


def parsed(value: object) -> object:
    """A JSON column read with plain SQL: parsed already on PostgreSQL, text on SQLite."""
    return json.loads(value) if isinstance(value, str) else value


def test_0006_keeps_what_was_recorded_before_it(db_url: str) -> None:
    engine = make_engine(db_url)
    downgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO approvals (action, service_slug, team_slug, tier, environment, production,"
                " version, summary, status, requested_by, requested_at) VALUES"
                " ('deploy', 'checkout', 'shop', 1, 'production', true, '1.2.0', 'Tax fix', 'pending',"
                " 'alice', :t),"
                " ('deploy', 'cart', 'shop', 2, 'staging', false, NULL, '', 'not_required', 'bob', :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO environments (slug, name, position, production, created_at)"
                " VALUES ('p', 'P', 1, true, :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO releases (service_slug, version, notes, created_by, created_at)"
                " VALUES ('checkout', '1.2.0', '', 'ci', :t)"
            ),
            {"t": T0},
        )
        conn.execute(
            text(
                "INSERT INTO deploys (external_id, service_slug, environment_id, release_id, status, source,"
                " deployed_by, started_at, notes, reported_at)"
                " VALUES ('run-1', 'checkout', 1, 1, 'succeeded', 'ci', 'token:ci', :t, '', :t)"
            ),
            {"t": T0},
        )

    upgrade(engine)

    with engine.connect() as conn:
        requests = conn.execute(
            text(
                "SELECT resource_type, resource_key, details, service_slug, version"
                " FROM approvals ORDER BY id"
            )
        ).all()
        events = conn.execute(text("SELECT from_status, to_status, actor, reason FROM deploy_events")).all()
        versions = conn.execute(text("SELECT version FROM deploys")).scalars().all()
    assert [
        (kind, key, parsed(details), slug, version) for kind, key, details, slug, version in requests
    ] == [
        ("service", "checkout", {"version": "1.2.0"}, "checkout", "1.2.0"),
        ("service", "cart", {}, "cart", None),
    ]
    assert events == [(None, "succeeded", "token:ci", "recorded before status changes were kept")]
    assert versions == [1]

    downgrade(engine, "0005")
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT service_slug, version FROM approvals ORDER BY id")).all()
    assert kept == [("checkout", "1.2.0"), ("cart", None)]
    upgrade(engine)
    engine.dispose()
