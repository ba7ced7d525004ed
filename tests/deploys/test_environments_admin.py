"""The environments admin page: admins add and reorder environments with a form; others get 403."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.clock import FrozenClock
from quarterdeck.deploys import service as deploys
from quarterdeck.errors import Forbidden
from tests.conftest import make_user, session_client


def _browser(
    app: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock, email: str
) -> tuple[TestClient, str]:
    """A signed-in browser that sends its CSRF token only where a form would carry it."""
    client = session_client(app, sessions, clock, email)
    csrf = client.headers.pop("X-CSRF-Token")
    return client, csrf


def test_an_admin_adds_and_changes_environments_with_the_form(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "ops@corp.example", role=GlobalRole.ADMIN)
    browser, csrf = _browser(app_under_test, sessions, clock, "ops@corp.example")
    form = {
        "csrf_token": csrf,
        "slug": "production-eu",
        "name": "Production (EU)",
        "position": "1",
        "production": "true",
    }

    added = browser.post("/admin/environments", data=form, follow_redirects=False)
    renamed = browser.post(
        "/admin/environments",
        data=form | {"name": "EU", "position": "0", "production": ""},
        follow_redirects=False,
    )
    browser.post("/admin/environments", data=form | {"slug": "staging", "name": "Staging", "position": "1"})

    assert (added.status_code, renamed.status_code) == (303, 303)
    listed = client.get("/api/v1/environments").json()
    assert listed == [
        {"slug": "production-eu", "name": "EU", "position": 0, "production": False},
        {"slug": "staging", "name": "Staging", "position": 1, "production": True},
    ]
    page = browser.get("/admin/environments").text
    assert page.index('data-environment="production-eu"') < page.index('data-environment="staging"')
    actions = [
        e["action"] for e in client.get("/api/v1/audit", params={"action": "environment.put"}).json()["items"]
    ]
    assert actions == ["environment.put"] * 3


def test_the_form_refuses_a_bad_slug_and_a_missing_csrf_token(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "ops@corp.example", role=GlobalRole.ADMIN)
    browser, csrf = _browser(app_under_test, sessions, clock, "ops@corp.example")

    bad_slug = browser.post("/admin/environments", data={"csrf_token": csrf, "slug": "Prod EU!", "name": "x"})
    no_csrf = browser.post("/admin/environments", data={"slug": "prod", "name": "Prod"})

    assert (bad_slug.status_code, no_csrf.status_code) == (422, 403)
    assert client.get("/api/v1/environments").json() == []


def test_members_neither_see_nor_use_the_environments_page(
    app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "dev@corp.example", teams={"payments": "owner"})
    browser, csrf = _browser(app_under_test, sessions, clock, "dev@corp.example")

    page = browser.get("/admin/environments")
    post = browser.post("/admin/environments", data={"csrf_token": csrf, "slug": "prod", "name": "Prod"})

    assert (page.status_code, post.status_code) == (403, 403)
    assert "/admin/environments" not in browser.get("/services").text


def test_the_service_lists_the_environments_to_edit_for_admins_only(sessions: sessionmaker[Session]) -> None:
    member = Actor(kind="user", name="mia@shop.example", role=GlobalRole.MEMBER, user_id=5)
    admin = Actor(kind="user", name="ada@corp.example", role=GlobalRole.ADMIN, user_id=6, all_teams=True)
    with sessions() as session:
        with pytest.raises(Forbidden) as refused:
            deploys.environments_to_edit(session, member)
        assert [env.slug for env in deploys.environments_to_edit(session, admin)] == []
    assert refused.value.message == "only admins may do this"
