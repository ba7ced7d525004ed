"""What the access tests share: signing a browser in, reading CSRF tokens, and an app shared by a module."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookies import Morsel, SimpleCookie
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import users
from quarterdeck.access.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from quarterdeck.access.schemas import GlobalRole
from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.conftest import ADMIN_EMAIL, NOW, fresh_database, make_token, make_user
from tests.helpers import Json, bearer

PASSWORD = "correct horse battery"
"""The password the access tests give their users (12+ characters, as the app requires)."""

_FORM_CSRF = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its lowest cost for one test: the same code path, milliseconds instead of 0.1 s a hash.

    The unknown-account dummy hash is swapped too, so failed sign-ins for nobody stay cheap as well.
    """
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(users, "_hasher", cheap)
    monkeypatch.setattr(users, "_DUMMY_HASH", cheap.hash("not a password anyone has"))


def sha256(raw: str) -> str:
    """The hex SHA-256 of a secret: how tokens and session cookies are stored."""
    return hashlib.sha256(raw.encode()).hexdigest()


def set_cookie(response: Response, name: str) -> Morsel[str] | None:
    """The `Set-Cookie` of an answer for one cookie name, parsed; None when the answer sets no such cookie."""
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar[name]
    return None


def form_csrf(page: str) -> str:
    """The hidden `csrf_token` field of the first form on a page."""
    found = _FORM_CSRF.search(page)
    assert found is not None, "no csrf_token field on the page"
    return html.unescape(found.group(1))


def meta_csrf(page: str) -> str | None:
    """The session's CSRF token from `<meta name="csrf-token">`; None on a page for nobody."""
    found = _META_CSRF.search(page)
    return html.unescape(found.group(1)) if found else None


def login_form_token(client: TestClient) -> str:
    """GET /login and return the form's CSRF token, after checking it is the one in the cookie."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    token = form_csrf(page.text)
    assert client.cookies.get(LOGIN_CSRF_COOKIE) == token
    return token


def post_login(
    client: TestClient, email: str, password: str, *, csrf: str | None, next_: str | None = None
) -> Response:
    """POST the sign-in form as a browser would (`csrf` None leaves the field out); redirects not followed."""
    data = {"email": email, "password": password}
    if csrf is not None:
        data["csrf_token"] = csrf
    if next_ is not None:
        data["next"] = next_
    response: Response = client.post("/login", data=data, follow_redirects=False)
    return response


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign a browser in with a password and return its session's CSRF token (for X-CSRF-Token)."""
    response = post_login(client, email, password, csrf=login_form_token(client))
    assert response.status_code == 303, response.text
    assert client.cookies.get(SESSION_COOKIE)
    return session_csrf(client)


def session_csrf(client: TestClient) -> str:
    """The CSRF token of the client's session, read from a page like a script would."""
    page = client.get("/account")
    assert page.status_code == 200, page.text
    token = meta_csrf(page.text)
    assert token is not None, "the page carries no CSRF token: not signed in?"
    return token


def me(client: TestClient, headers: dict[str, str] | None = None) -> Json:
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


# ---------------------------------------------------------------- an app shared by a module's tests


@dataclass(frozen=True)
class SharedApp:
    """An app on a database of its own, for a module's read-mostly tests: `client` is an admin by token."""

    app: FastAPI
    client: TestClient
    sessions: sessionmaker[Session]
    clock: FrozenClock
    db_url: str


@contextmanager
def shared_app(request: pytest.FixtureRequest, folder: Path) -> Iterator[SharedApp]:
    """For a fixture parametrised over "sqlite" and "postgresql": the app, an admin signed in by token."""
    with fresh_database(request, request.param, folder) as url:
        clock = FrozenClock(NOW)
        app = create_app(Settings(database_url=url, git_cache_dir=folder / "git"), clock=clock)
        try:
            make_user(app.state.runtime.sessions, clock, ADMIN_EMAIL, role=GlobalRole.ADMIN)
            token = make_token(app.state.runtime.sessions, clock, user=ADMIN_EMAIL, scopes=["admin"])
            with TestClient(app, headers=bearer(token)) as client:
                yield SharedApp(app, client, app.state.runtime.sessions, clock, url)
        finally:
            app.state.runtime.close()
