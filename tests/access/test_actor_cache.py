"""The per-process actor cache: reads reuse what a credential resolved to for at most a second; a
change made elsewhere (another replica, the CLI) shows within that second; changes through this
process show at once."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.deps import CACHE_SECONDS
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from tests.conftest import TEST_ACTOR, make_token, make_user


def test_a_revocation_elsewhere_shows_within_the_cache_window(
    anon_client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "ci@corp.example")
    token = make_token(sessions, clock, user="ci@corp.example", scopes=["read"])
    headers = {"Authorization": f"Bearer {token}"}
    assert anon_client.get("/api/v1/me", headers=headers).json()["signed_in"] is True
    with transaction(sessions) as session:
        [listed] = access.list_tokens(session, TEST_ACTOR, everyone=True, at=clock.now())[-1:]
        access.revoke_token(session, TEST_ACTOR, listed.id, at=clock.now())

    cached = anon_client.get("/api/v1/me", headers=headers)
    clock.at += timedelta(seconds=CACHE_SECONDS)
    fresh = anon_client.get("/api/v1/me", headers=headers)

    assert (cached.status_code, fresh.status_code) == (200, 401)
    assert fresh.json()["error"]["code"] == "access.token_revoked"


def test_a_change_through_this_process_shows_at_once(client: TestClient, anon_client: TestClient) -> None:
    created = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"], "expires": "30d"}).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert anon_client.get("/api/v1/me", headers=headers).status_code == 200

    assert client.delete(f"/api/v1/tokens/{created['id']}").status_code == 200

    assert anon_client.get("/api/v1/me", headers=headers).status_code == 401


def test_the_cache_never_outlives_the_credential(
    anon_client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "ci@corp.example")
    with transaction(sessions) as session:
        created = access.create_token(
            session,
            TEST_ACTOR,
            name="short",
            scopes=["read"],
            user="ci@corp.example",
            expires="1h",
            at=clock.now(),
        )
    headers = {"Authorization": f"Bearer {created.token}"}
    clock.at += timedelta(hours=1) - timedelta(milliseconds=500)
    assert anon_client.get("/api/v1/me", headers=headers).status_code == 200

    clock.at += timedelta(milliseconds=500)

    assert anon_client.get("/api/v1/me", headers=headers).status_code == 401
