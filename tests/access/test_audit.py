from __future__ import annotations
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.access.helpers import audit_log, create_service, create_team
import pytest

def test_probe(client: TestClient, sessions: sessionmaker[Session], db_url: str) -> None:
    create_team(client, "payments")
    create_service(client, "payments-api", "payments")
    for e in audit_log(sessions):
        print(e.model_dump())
    r = client.get("/api/v1/audit", params={"since": "2026-11-25T12:00:00"})
    print("naive since", r.status_code, r.text[:300])
    r = client.get("/api/v1/services", params={"q": "a\x00b"})
    print("nul q", r.status_code)
