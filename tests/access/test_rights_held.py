"""Fields that grant rights are changed only by someone who already holds those rights, and rules that
depend on a service are judged against the service as it is when the change happens.

Each test here failed on the code before the hardening issue (#8): a member joined any team by editing
their own person entry, a tier lowered and raised again left an approval "not required", a personal
token's team limit was ignored, a bad team role was a 500, and token creation told who has an account.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.models import LoginAttempt
from quarterdeck.access.schemas import GlobalRole
from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.conftest import make_token, make_user, session_client
from tests.helpers import Json, audit_log, bearer, create_service, create_team, error_of

ALICE, BOB, CAROL = "alice@shop.example", "bob@shop.example", "carol@shop.example"


@pytest.fixture
def org(client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock) -> TestClient:
    """Teams checkout (Alice a member, Carol its lead) and payments (Bob its lead), a tier-1 service
    each, staging and production, and an account for each person."""
    create_team(client, "checkout")
    create_team(client, "payments")
    for email, handle, teams in (
        (ALICE, "alice", ["checkout"]),
        (BOB, "bob", []),
        (CAROL, "carol", []),
    ):
        made = client.post("/api/v1/people", json={"email": email, "name": handle.title(), "teams": teams})
        assert made.status_code == 201, made.text
        make_user(sessions, clock, email)
    for team, lead in (("checkout", "carol"), ("payments", "bob")):
        patched = client.patch(f"/api/v1/teams/{team}", json={"members": [{"person": lead, "role": "lead"}]})
        assert patched.status_code == 200, patched.text
    create_service(client, "checkout-api", "checkout", tier=1)
    create_service(client, "payments-api", "payments", tier=1)
    for position, (slug, production) in enumerate((("staging", False), ("production", True)), start=1):
        put = client.put(
            f"/api/v1/environments/{slug}",
            json={"name": slug.title(), "position": position, "production": production},
        )
        assert put.status_code == 200, put.text
    return client


@pytest.fixture
def as_user(app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock) -> Iterator[Any]:
    clients: list[TestClient] = []

    def signed_in(email: str) -> TestClient:
        made = session_client(app_under_test, sessions, clock, email)
        clients.append(made)
        return made

    yield signed_in
    for made in clients:
        made.close()


def teams_of(client: TestClient) -> dict[str, str]:
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    teams: dict[str, str] = me.json()["teams"]
    return teams


# ---------------------------------------------------------------- finding 1: joining a team


@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_member_cannot_add_themself_to_another_team(org: TestClient, as_user: Any, method: str) -> None:
    alice = as_user(ALICE)
    entries_before = len(audit_log(alice.app.state.runtime.sessions))
    body: Json = {"teams": ["checkout", "payments"]}
    if method == "put":
        body |= {"email": ALICE, "name": "Alice", "handle": "alice"}
    answer = getattr(alice, method)("/api/v1/people/alice", json=body)
    error = error_of(answer, 403, "access.forbidden")
    assert "payments" in error["message"]
    assert teams_of(alice) == {"checkout": "member"}
    assert alice.patch("/api/v1/services/payments-api", json={"description": "mine now"}).status_code == 403
    assert org.get("/api/v1/people/alice").json()["teams"][0]["slug"] == "checkout"
    assert len(audit_log(alice.app.state.runtime.sessions)) == entries_before


def test_a_member_may_leave_a_team_themself(org: TestClient, as_user: Any) -> None:
    alice = as_user(ALICE)
    assert alice.patch("/api/v1/people/alice", json={"teams": []}).status_code == 200
    assert teams_of(alice) == {}


def test_a_member_cannot_take_another_team_member_off_it(org: TestClient, as_user: Any) -> None:
    org.post("/api/v1/people", json={"email": "dan@shop.example", "name": "Dan", "teams": ["payments"]})
    alice = as_user(ALICE)
    answer = alice.patch("/api/v1/people/dan", json={"teams": []})
    assert answer.status_code == 403, answer.text


def test_the_owner_of_a_team_adds_people_through_its_members(org: TestClient, as_user: Any) -> None:
    bob = as_user(BOB)
    assert teams_of(bob) == {"payments": "owner"}
    members = [{"person": "bob", "role": "lead"}, {"person": "alice", "role": "member"}]
    added = bob.patch("/api/v1/teams/payments", json={"members": members})
    assert added.status_code == 200, added.text
    assert teams_of(as_user(ALICE)) == {"checkout": "member", "payments": "member"}
    assert as_user(ALICE).patch("/api/v1/teams/payments", json={"members": []}).status_code == 403


def test_moving_the_email_of_an_entry_with_teams_takes_their_owner(
    org: TestClient, as_user: Any, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    """The e-mail decides which account gets the entry's team roles: pointing Alice's entry at another
    account would hand that account team checkout."""
    make_user(sessions, clock, "mallory@shop.example")
    alice = as_user(ALICE)
    moved = alice.patch("/api/v1/people/alice", json={"email": "mallory@shop.example"})
    assert error_of(moved, 403, "access.forbidden")["details"]["team"] == "checkout"
    assert teams_of(as_user("mallory@shop.example")) == {}
    assert org.patch("/api/v1/people/alice", json={"email": "alice2@shop.example"}).status_code == 200


def test_an_email_in_use_by_another_person_is_refused(org: TestClient) -> None:
    taken = org.patch("/api/v1/people/alice", json={"email": BOB})
    error = error_of(taken, 409, "catalog.duplicate_email")
    assert error["details"] == [{"field": "email", "message": "used by bob"}]


# ---------------------------------------------------------------- finding 2: two-person rule


def test_an_approval_asked_at_a_low_tier_is_pending_once_the_tier_is_raised(
    org: TestClient, as_user: Any, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "erin@shop.example", teams={"checkout": "member"})
    alice = as_user(ALICE)
    assert alice.patch("/api/v1/services/checkout-api", json={"tier": 3}).status_code == 200
    asked = alice.post(
        "/api/v1/approvals",
        json={"service": "checkout-api", "environment": "production", "version": "2.0.0", "summary": "ship"},
    )
    assert asked.status_code == 201, asked.text
    approval = asked.json()
    assert approval["status"] == "not_required"
    assert alice.patch("/api/v1/services/checkout-api", json={"tier": 1}).status_code == 200

    assert alice.get(f"/api/v1/approvals/{approval['id']}").json()["status"] == "pending"
    assert [a["id"] for a in alice.get("/api/v1/approvals?status=pending").json()] == [approval["id"]]
    assert alice.get("/api/v1/approvals?status=not_required").json() == []
    own = alice.post(f"/api/v1/approvals/{approval['id']}/approve")
    assert error_of(own, 403, "access.forbidden")["message"].startswith("you asked for this change")

    erin = as_user("erin@shop.example")
    decided = erin.post(f"/api/v1/approvals/{approval['id']}/approve")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
    assert decided.json()["tier"] == 1


def test_an_approval_is_decided_by_the_team_that_owns_the_service_now(
    org: TestClient, as_user: Any, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "erin@shop.example", teams={"checkout": "member"})
    asked = as_user(ALICE).post(
        "/api/v1/approvals",
        json={"service": "checkout-api", "environment": "production", "summary": "ship"},
    )
    assert asked.json()["status"] == "pending"
    assert org.patch("/api/v1/services/checkout-api", json={"owner": "payments"}).status_code == 200
    erin = as_user("erin@shop.example")
    refused = erin.post(f"/api/v1/approvals/{asked.json()['id']}/approve")
    assert "payments" in error_of(refused, 403, "access.forbidden")["message"]
    assert as_user(BOB).post(f"/api/v1/approvals/{asked.json()['id']}/approve").status_code == 200


# ---------------------------------------------------------------- finding 3: token team limits


def test_a_personal_token_limited_to_a_team_acts_only_there(
    org: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "frank@shop.example", teams={"checkout": "member", "payments": "member"})
    token = make_token(sessions, clock, user="frank@shop.example", scopes=["write:catalog"], team="checkout")
    headers = bearer(token)
    mine = org.patch("/api/v1/services/checkout-api", json={"description": "ok"}, headers=headers)
    assert mine.status_code == 200, mine.text
    other = org.patch("/api/v1/services/payments-api", json={"description": "no"}, headers=headers)
    assert "payments" in error_of(other, 403, "access.forbidden")["message"]
    assert org.get("/api/v1/me", headers=headers).json()["teams"] == {"checkout": "member"}


def test_an_admins_personal_token_limited_to_a_team_is_no_admin(
    org: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "root@shop.example", role=GlobalRole.ADMIN)
    token = make_token(sessions, clock, user="root@shop.example", scopes=["admin"], team="checkout")
    headers = bearer(token)
    assert org.patch("/api/v1/services/checkout-api", json={"tier": 2}, headers=headers).status_code == 200
    assert org.patch("/api/v1/services/payments-api", json={"tier": 2}, headers=headers).status_code == 403
    assert org.get("/api/v1/users", headers=headers).status_code == 403


# ---------------------------------------------------------------- finding 9: smaller ones


@pytest.mark.parametrize(
    ("email", "role", "status"),
    [("viewer@shop.example", "bogus", 403), ("root@shop.example", "bogus", 422)],
)
def test_a_bad_team_role_from_the_admin_page_is_a_clear_error_after_the_policy(
    org: TestClient,
    as_user: Any,
    sessions: sessionmaker[Session],
    clock: FrozenClock,
    email: str,
    role: str,
    status: int,
) -> None:
    make_user(sessions, clock, email, role=GlobalRole.VIEWER if status == 403 else GlobalRole.ADMIN)
    browser = as_user(email)
    target = make_user(sessions, clock, "target@shop.example")
    answer = browser.post(
        f"/admin/users/{target}/teams",
        data={"team": "checkout", "role": role},
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert answer.status_code == status, answer.text
    if status == 422:
        error = error_of(answer, 422, "access.bad_team_role")
        assert error["details"][0]["field"] == "role"
        assert "'bogus' is not a team role" in error["message"]


def test_making_a_token_for_someone_else_does_not_tell_whether_they_exist(
    org: TestClient, as_user: Any
) -> None:
    alice = as_user(ALICE)
    exists = alice.post("/api/v1/tokens", json={"name": "x", "scopes": ["read"], "user": BOB})
    missing = alice.post("/api/v1/tokens", json={"name": "x", "scopes": ["read"], "user": "nobody@x.example"})
    assert exists.status_code == missing.status_code == 403
    assert exists.json() == missing.json()
    mine = alice.post("/api/v1/tokens", json={"name": "x", "scopes": ["read"], "user": ALICE.upper()})
    assert mine.status_code == 201, mine.text


def _failed_sign_in_address(settings: Settings, clock: FrozenClock, sessions: sessionmaker[Session]) -> str:
    app = create_app(settings, clock=clock)
    try:
        with TestClient(app, client=("127.0.0.1", 50000)) as browser:
            browser.get("/login")
            browser.post(
                "/login",
                data={
                    "email": "x@shop.example",
                    "password": "wrong password!",
                    "csrf_token": browser.cookies.get("qd_login_csrf") or "",
                },
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
    finally:
        app.state.runtime.close()
    with sessions() as session:
        attempt = session.scalars(select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
    assert attempt is not None
    return attempt.ip


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    settings: Settings, clock: FrozenClock, sessions: sessionmaker[Session]
) -> None:
    assert _failed_sign_in_address(settings, clock, sessions) == "127.0.0.1"
    trusting = settings.model_copy(update={"trusted_proxies": "127.0.0.1"})
    assert _failed_sign_in_address(trusting, clock, sessions) == "203.0.113.9"


def test_a_bad_trusted_proxy_setting_is_named() -> None:
    with pytest.raises(ValueError, match=r"QD_TRUSTED_PROXIES holds 'proxy\.local'"):
        Settings(trusted_proxies="10.0.0.1, proxy.local")
