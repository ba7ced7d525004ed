"""Who may do what, through HTTP: each role x each action answers the one status its cell of MATRIX names.

Each role signs in with a real browser session (cookie + CSRF header), on SQLite and PostgreSQL. The
organisation: team `payments` owns the tier-1 service `ledger`, team `web` owns `storefront`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.clock import FrozenClock
from tests.conftest import make_user, session_client

ROLES = ["admin", "team_owner", "team_member", "other_team", "viewer", "anonymous"]
REPORT = {
    "service": "ledger",
    "environment": "production",
    "version": "2.0.0",
    "status": "succeeded",
    "started_at": "2026-11-25T11:00:00Z",
    "finished_at": "2026-11-25T11:05:00Z",
}


@dataclass
class Org:
    app: FastAPI
    sessions: sessionmaker[Session]
    clock: FrozenClock
    clients: dict[str, TestClient]


def _client(
    app: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock, email: str | None
) -> TestClient:
    return TestClient(app) if email is None else session_client(app, sessions, clock, email)


@pytest.fixture
def org(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[Org]:
    for slug in ("payments", "web"):
        assert client.post("/api/v1/teams", json={"slug": slug, "name": slug.title()}).status_code == 201
    for slug, owner in (("ledger", "payments"), ("storefront", "web")):
        created = client.post("/api/v1/services", json={"slug": slug, "owner": owner, "tier": 1})
        assert created.status_code == 201, created.text
    env = client.put("/api/v1/environments/production", json={"name": "Production", "production": True})
    assert env.status_code == 200
    emails = {
        "admin": ("root@corp.example", GlobalRole.ADMIN, {}),
        "team_owner": ("owner@corp.example", GlobalRole.MEMBER, {"payments": "owner"}),
        "team_member": ("member@corp.example", GlobalRole.MEMBER, {"payments": "member"}),
        "other_team": ("webdev@corp.example", GlobalRole.MEMBER, {"web": "member"}),
        "viewer": ("viewer@corp.example", GlobalRole.VIEWER, {"payments": "member"}),
    }
    for email, role, teams in emails.values():
        make_user(sessions, clock, email, role=role, teams=teams)
    clients = {
        name: _client(app_under_test, sessions, clock, email) for name, (email, _r, _t) in emails.items()
    }
    clients["anonymous"] = _client(app_under_test, sessions, clock, None)
    with (
        clients["admin"],
        clients["team_owner"],
        clients["team_member"],
        clients["other_team"],
        clients["viewer"],
    ):
        yield Org(app_under_test, sessions, clock, clients)


def _request_approval(org: Org, by: str) -> int:
    response = org.clients[by].post(
        "/api/v1/approvals", json={"service": "ledger", "environment": "production", "version": "2.0.0"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    approval_id: int = response.json()["id"]
    return approval_id


def read(org: Org, role: str) -> Response:
    response: Response = org.clients[role].get("/api/v1/services/ledger")
    return response


def edit_own_team_service(org: Org, role: str) -> Response:
    response: Response = org.clients[role].patch(
        "/api/v1/services/ledger", json={"description": f"edited by {role}"}
    )
    return response


def edit_other_team_service(org: Org, role: str) -> Response:
    response: Response = org.clients[role].patch(
        "/api/v1/services/storefront", json={"description": f"edited by {role}"}
    )
    return response


def deploy(org: Org, role: str) -> Response:
    response: Response = org.clients[role].post("/api/v1/deploys", json=REPORT | {"id": f"matrix-{role}"})
    return response


def approve_own_deploy(org: Org, role: str) -> Response:
    requester = role if role not in {"viewer", "anonymous", "other_team"} else "team_member"
    approval_id = _request_approval(org, requester)
    response: Response = org.clients[role].post(f"/api/v1/approvals/{approval_id}/approve", json={})
    return response


def approve_someone_elses_deploy(org: Org, role: str) -> Response:
    approval_id = _request_approval(org, "team_owner" if role != "team_owner" else "team_member")
    response: Response = org.clients[role].post(f"/api/v1/approvals/{approval_id}/approve", json={})
    return response


def manage_tokens(org: Org, role: str) -> Response:
    response: Response = org.clients[role].post(
        "/api/v1/tokens", json={"name": f"{role}-ci", "scopes": ["read"], "expires": "30d"}
    )
    return response


def admin_pages(org: Org, role: str) -> Response:
    response: Response = org.clients[role].get("/admin/users", follow_redirects=False)
    return response


OK, CREATED, DENY, SIGN_IN, TO_SIGN_IN = "200", "201", "403", "401", "303"
"""Outcomes: the status each action answers when allowed (200, or 201 where it creates something),
403 when refused, 401 for nobody on the API, 303 to the sign-in page for nobody on a page."""
# Rows: actions; columns in ROLES order: admin, team_owner, team_member, other_team, viewer, anonymous.
MATRIX: dict[str, tuple[Callable[[Org, str], Response], list[str]]] = {
    "read": (read, [OK, OK, OK, OK, OK, SIGN_IN]),
    # a team's members edit its services; admins edit all; viewers only read
    "edit own team's service": (edit_own_team_service, [OK, OK, OK, DENY, DENY, SIGN_IN]),
    "edit other team's service": (edit_other_team_service, [OK, DENY, DENY, OK, DENY, SIGN_IN]),
    "deploy": (deploy, [CREATED, CREATED, CREATED, DENY, DENY, SIGN_IN]),
    # the two-person rule holds for admins too: nobody approves their own request
    "approve own deploy": (approve_own_deploy, [DENY, DENY, DENY, DENY, DENY, SIGN_IN]),
    "approve someone else's deploy": (
        approve_someone_elses_deploy,
        [OK, OK, OK, DENY, DENY, SIGN_IN],
    ),
    "manage own tokens": (manage_tokens, [CREATED, CREATED, CREATED, CREATED, CREATED, SIGN_IN]),
    "admin pages": (admin_pages, [OK, DENY, DENY, DENY, DENY, TO_SIGN_IN]),
}


def _outcome(response: Response) -> str:
    """The status answered; a 403 from the API must also carry the code `access.forbidden`."""
    if response.status_code == 403 and response.headers["content-type"] == "application/json":
        assert response.json()["error"]["code"] == "access.forbidden", response.text
    return str(response.status_code)


@pytest.mark.parametrize("action", list(MATRIX))
def test_each_role_may_or_may_not(org: Org, action: str) -> None:
    """One row of the matrix per test: every role tries the action; the row must match exactly."""
    attempt, expected = MATRIX[action]

    outcomes = [_outcome(attempt(org, role)) for role in ROLES]

    assert dict(zip(ROLES, outcomes, strict=True)) == dict(zip(ROLES, expected, strict=True))


def test_a_refused_edit_changes_nothing_and_is_not_audited(org: Org) -> None:
    before = org.clients["admin"].get("/api/v1/services/storefront").json()
    audit_before = org.clients["admin"].get("/api/v1/audit").json()["total"]

    assert edit_other_team_service(org, "team_member").status_code == 403

    assert org.clients["admin"].get("/api/v1/services/storefront").json() == before
    assert org.clients["admin"].get("/api/v1/audit").json()["total"] == audit_before


def test_pages_show_only_the_buttons_their_viewer_may_use(org: Org) -> None:
    own = org.clients["team_member"].get("/services/ledger").text
    other = org.clients["team_member"].get("/services/storefront").text
    viewer = org.clients["viewer"].get("/services/ledger").text
    admin = org.clients["admin"].get("/services/storefront").text

    assert ('id="edit-service"' in own, 'id="edit-service"' in other) == (True, False)
    assert ('id="edit-service"' in viewer, 'id="edit-service"' in admin) == (False, True)
    assert ("/admin/users" in own, "/admin/users" in admin) == (False, True)
