"""The per-process cache of dependency graph drawings: a write through this process shows at once;
one through another replica within GENERATION_TTL, when this process next re-reads the generation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import cache
from tests.helpers import create_service, create_team

GRAPH = "/services/checkout/graph.svg"


def test_own_write_shows_at_once(client: TestClient) -> None:
    create_team(client, "payments")
    create_service(client, "checkout", "payments", depends_on=["ledger"])
    assert "ledger" in client.get(GRAPH).text

    client.patch("/api/v1/services/checkout", json={"depends_on": ["vault"]}).raise_for_status()

    assert "vault" in client.get(GRAPH).text
    assert "ledger" not in client.get(GRAPH).text


def test_write_by_another_replica_shows_once_the_generation_is_reread(
    client: TestClient, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_team(client, "payments")
    create_service(client, "checkout", "payments", depends_on=["ledger"])
    clock = [1000.0]
    monkeypatch.setattr(cache, "monotonic", lambda: clock[0])
    assert "ledger" in client.get(GRAPH).text  # drawn, and the generation read, at t=1000

    with sessions() as other, other.begin():  # another replica: its own SQL, not this process's cache
        other.execute(text("UPDATE service_dependencies SET target_slug = 'vault'"))
        other.execute(text("UPDATE catalog_state SET generation = generation + 1 WHERE id = 1"))

    clock[0] += cache.GENERATION_TTL / 2
    assert "vault" not in client.get(GRAPH).text
    clock[0] += cache.GENERATION_TTL
    assert "vault" in client.get(GRAPH).text
