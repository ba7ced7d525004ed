"""The view cache: a write through this process shows at once; one through another replica within
GENERATION_TTL, when this process next re-reads the catalog generation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import cache


def test_own_write_shows_at_once(client: TestClient) -> None:
    client.post("/api/v1/services", json={"slug": "svc", "owner": "team", "title": "Before"})
    assert client.get("/api/v1/services/svc").json()["title"] == "Before"

    client.patch("/api/v1/services/svc", json={"title": "After"})

    assert client.get("/api/v1/services/svc").json()["title"] == "After"


def test_write_by_another_replica_shows_once_the_generation_is_reread(
    client: TestClient, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    client.post("/api/v1/services", json={"slug": "svc", "owner": "team", "title": "Before"})
    assert client.get("/api/v1/services/svc").json()["title"] == "Before"
    clock = [1000.0]
    monkeypatch.setattr(cache, "monotonic", lambda: clock[0])
    client.get("/api/v1/services/svc")  # the generation is read at t=1000

    with sessions() as other, other.begin():  # another replica: its own SQL, not this process's cache
        other.execute(text("UPDATE services SET title = 'Elsewhere' WHERE slug = 'svc'"))
        other.execute(text("UPDATE catalog_state SET generation = generation + 1 WHERE id = 1"))

    clock[0] += cache.GENERATION_TTL / 2
    assert client.get("/api/v1/services/svc").json()["title"] == "Before"
    clock[0] += cache.GENERATION_TTL
    assert client.get("/api/v1/services/svc").json()["title"] == "Elsewhere"
