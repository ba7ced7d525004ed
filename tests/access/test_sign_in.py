"""Password sign-in through the app: CSRF on the form, cookies, lockout and rate limits, session fixation,
sign-out, expiry, switched-off users and open redirects. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.deps import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from quarterdeck.access.models import LoginAttempt, User, WebSession
from quarterdeck.access.schemas import GlobalRole
from quarterdeck.access.users import IP_FAILURE_FACTOR
from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from tests.access.helpers import (
    PASSWORD,
    SharedApp,
    cheap_passwords,
    form_csrf,
    login_form_token,
    me,
    post_login,
    session_csrf,
    set_cookie,
    sha256,
    shared_app,
    sign_in,
)
from tests.conftest import NOW, make_user
from tests.helpers import error_of

EMAIL = "olga@example.com"
WRONG_LOGIN = "Wrong e-mail or password."
JSON = {"Accept": "application/json"}
_LOGIN_ERROR = re.compile(r'<p class="alert alert-error" id="login-error" role="alert">([^<]*)</p>')


REAL_ARGON2 = {"test_good_password_starts_a_session"}
"""Tests that keep argon2's real cost; the rest make it cheap (see helpers.cheap_passwords)."""


@pytest.fixture(autouse=True)
def _cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.function.__name__ not in REAL_ARGON2:
        cheap_passwords(monkeypatch)


@pytest.fixture
def user_id(sessions: sessionmaker[Session], clock: FrozenClock) -> int:
    return make_user(sessions, clock, EMAIL, password=PASSWORD, teams={"payments": "owner"})


def login_error(page: str) -> str | None:
    found = _LOGIN_ERROR.search(page)
    return html.unescape(found.group(1)) if found else None


def web_sessions(sessions: sessionmaker[Session]) -> list[WebSession]:
    with sessions() as session:
        return list(session.scalars(select(WebSession).order_by(WebSession.id)))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def accounts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    """EMAIL with a password, sso@ with none, gone@ switched off: for tests that sign in or fail to, and
    leave nothing the next one trips over (one failure per account at most, far from any lockout)."""
    with shared_app(request, tmp_path_factory.mktemp("accounts")) as shared:
        with pytest.MonkeyPatch.context() as patch:
            cheap_passwords(patch)
            make_user(shared.sessions, shared.clock, EMAIL, password=PASSWORD, teams={"payments": "owner"})
            make_user(shared.sessions, shared.clock, "sso@example.com")
            make_user(shared.sessions, shared.clock, "gone@example.com", password=PASSWORD)
        gone = shared.client.patch("/api/v1/users/gone@example.com", json={"active": False})
        assert gone.status_code == 200
        yield shared


@pytest.fixture
def visitor(accounts: SharedApp) -> Iterator[TestClient]:
    """A fresh browser on the shared accounts app."""
    with TestClient(accounts.app) as fresh:
        yield fresh


def attempts(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return len(session.scalars(select(LoginAttempt)).all())


@pytest.fixture
def browser(app_under_test: FastAPI) -> Iterator[TestClient]:
    """A second browser, with cookies of its own."""
    with TestClient(app_under_test) as other:
        yield other


# ---------------------------------------------------------------- the form and its CSRF token


def test_login_page_sets_the_csrf_cookie_and_the_form_carries_it(anon_client: TestClient) -> None:
    page = anon_client.get("/login")

    assert page.status_code == 200
    cookie = set_cookie(page, LOGIN_CSRF_COOKIE)
    assert cookie is not None
    assert (cookie["httponly"], cookie["samesite"], cookie["max-age"]) == (True, "lax", "3600")
    assert f'<input type="hidden" name="csrf_token" value="{cookie.value}">' in page.text
    assert len(cookie.value) == 43  # token_urlsafe(32)
    # the same browser keeps its token while the cookie lives
    assert login_form_token(anon_client) == cookie.value


@pytest.mark.parametrize(
    "case",
    [
        # the form without its hidden field
        "missing",
        # a token that is not the cookie's
        "wrong",
        # the right-looking token, but the browser has no cookie (a cross-site form post)
        "no-cookie",
    ],
)
def test_login_without_the_right_csrf_token_is_refused(
    accounts: SharedApp, visitor: TestClient, case: str
) -> None:
    token = login_form_token(visitor)
    sent = {"missing": None, "wrong": "x" * 43, "no-cookie": token}[case]
    if case == "no-cookie":
        visitor.cookies.delete(LOGIN_CSRF_COOKIE)
    sessions_before, attempts_before = web_sessions(accounts.sessions), attempts(accounts.sessions)

    page = post_login(visitor, EMAIL, PASSWORD, csrf=sent)
    as_json = visitor.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": sent or ""}, headers=JSON
    )

    assert page.status_code == 403
    assert "the sign-in form expired; reload it and try again" in page.text
    error_of(as_json, 403, "access.csrf")
    assert set_cookie(page, SESSION_COOKIE) is None
    assert set_cookie(as_json, SESSION_COOKIE) is None
    assert me(visitor)["signed_in"] is False
    assert [w.id for w in web_sessions(accounts.sessions)] == [w.id for w in sessions_before]
    assert attempts(accounts.sessions) == attempts_before  # refused before the password was looked at


# ---------------------------------------------------------------- good and bad passwords


def test_good_password_starts_a_session(
    anon_client: TestClient, sessions: sessionmaker[Session], user_id: int
) -> None:
    response = post_login(anon_client, EMAIL, PASSWORD, csrf=login_form_token(anon_client))

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = set_cookie(response, SESSION_COOKIE)
    assert cookie is not None
    assert (cookie["httponly"], cookie["samesite"], cookie["path"], cookie["secure"]) == (
        True,
        "lax",
        "/",
        "",
    )
    assert cookie["max-age"] == str(12 * 3600)
    cleared = set_cookie(response, LOGIN_CSRF_COOKIE)
    assert cleared is not None and (cleared.value, cleared["max-age"]) == ("", "0")
    assert me(anon_client) == {
        "signed_in": True,
        "kind": "user",
        "name": EMAIL,
        "role": "member",
        "teams": {"payments": "owner"},
        "scopes": None,
    }
    [web] = web_sessions(sessions)
    assert web.secret_hash == sha256(cookie.value)
    assert (web.user_id, web.created_at, web.expires_at, web.ip) == (
        user_id,
        NOW,
        NOW + timedelta(hours=12),
        "testclient",
    )
    with sessions() as session:
        user = session.get_one(User, user_id)
        assert user.last_login_at == NOW
        assert user.password_hash is not None
        # stored with argon2's default (current) parameters, never the password itself
        assert PasswordHasher().check_needs_rehash(user.password_hash) is False
        assert PASSWORD not in user.password_hash
        [attempt] = session.scalars(select(LoginAttempt)).all()
        assert (attempt.email, attempt.ip, attempt.at, attempt.succeeded) == (EMAIL, "testclient", NOW, True)


@pytest.mark.parametrize(
    ("email", "password"),
    [
        # a wrong password for a real account
        (EMAIL, "not the password at all"),
        # an e-mail with no account: the same answer, so nobody learns which e-mails have accounts
        ("nobody@example.com", PASSWORD),
        # an account with single sign-on only (no password)
        ("sso@example.com", PASSWORD),
        # a switched-off account with its right password
        ("gone@example.com", PASSWORD),
    ],
)
def test_failed_sign_in_answers_the_same_401_page(
    accounts: SharedApp, visitor: TestClient, email: str, password: str
) -> None:
    before = web_sessions(accounts.sessions)

    response = post_login(visitor, email, password, csrf=login_form_token(visitor))

    assert response.status_code == 401
    assert login_error(response.text) == WRONG_LOGIN
    assert set_cookie(response, SESSION_COOKIE) is None
    assert [w.id for w in web_sessions(accounts.sessions)] == [w.id for w in before]
    assert me(visitor)["signed_in"] is False


# ---------------------------------------------------------------- lockout and rate limits


def test_account_locks_after_max_failures_until_the_lockout_passes(
    anon_client: TestClient, settings: Settings, clock: FrozenClock, user_id: int
) -> None:
    token = login_form_token(anon_client)
    # the lock is per account, whatever case or spacing the e-mail is typed in
    spellings = [EMAIL.upper(), f"  {EMAIL} ", EMAIL.title()]
    for attempt in range(settings.login_max_failures):
        failed = post_login(anon_client, spellings[attempt % 3], "wrong password!!", csrf=token)
        assert (failed.status_code, login_error(failed.text)) == (401, WRONG_LOGIN)
    locked_message = (
        f"this account is locked after {settings.login_max_failures} failed sign-ins; "
        f"try again in {settings.login_lockout_minutes} minutes"
    )
    lockout = timedelta(minutes=settings.login_lockout_minutes)

    refused = post_login(anon_client, EMAIL, PASSWORD, csrf=token)
    clock.at = NOW + lockout - timedelta(seconds=1)
    still_refused = post_login(anon_client, EMAIL, PASSWORD, csrf=token)
    clock.at = NOW + lockout + timedelta(seconds=1)
    let_in = post_login(anon_client, EMAIL, PASSWORD, csrf=token)

    assert (refused.status_code, login_error(refused.text)) == (429, locked_message)
    assert set_cookie(refused, SESSION_COOKIE) is None
    assert (still_refused.status_code, login_error(still_refused.text)) == (429, locked_message)
    assert let_in.status_code == 303
    assert me(anon_client)["name"] == EMAIL


def test_lockout_of_an_unknown_email_reads_exactly_like_a_real_one(
    anon_client: TestClient, settings: Settings, user_id: int
) -> None:
    token = login_form_token(anon_client)

    def answers(email: str) -> list[tuple[int, str | None]]:
        return [
            (r.status_code, login_error(r.text))
            for r in (
                post_login(anon_client, email, "wrong password!!", csrf=token)
                for _ in range(settings.login_max_failures + 1)
            )
        ]

    known, unknown = answers(EMAIL), answers("nobody@example.com")

    locked = (
        429,
        f"this account is locked after {settings.login_max_failures} failed sign-ins; "
        f"try again in {settings.login_lockout_minutes} minutes",
    )
    assert known == [(401, WRONG_LOGIN)] * settings.login_max_failures + [locked]
    assert unknown == known


def test_a_success_starts_the_failure_count_again(
    anon_client: TestClient, settings: Settings, user_id: int
) -> None:
    for _round in range(2):
        token = login_form_token(anon_client)
        for _ in range(settings.login_max_failures - 1):
            assert post_login(anon_client, EMAIL, "wrong password!!", csrf=token).status_code == 401
        assert post_login(anon_client, EMAIL, PASSWORD, csrf=token).status_code == 303
        anon_client.cookies.delete(SESSION_COOKIE)

    # 2 x (max - 1) failures in the window, but never max in a row: not locked
    final = post_login(anon_client, EMAIL, "wrong password!!", csrf=login_form_token(anon_client))
    assert (final.status_code, login_error(final.text)) == (401, WRONG_LOGIN)


def test_an_address_with_too_many_failures_is_slowed_down(
    app_under_test: FastAPI, settings: Settings, clock: FrozenClock, user_id: int
) -> None:
    limit = settings.login_max_failures * IP_FAILURE_FACTOR
    with (
        TestClient(app_under_test, client=("203.0.113.5", 40000)) as attacker,
        TestClient(app_under_test, client=("198.51.100.7", 40000)) as colleague,
    ):
        token = login_form_token(attacker)
        # one failure per e-mail: no account locks, only the address piles up failures
        for n in range(limit):
            failed = post_login(attacker, f"guess{n}@example.com", "wrong password!!", csrf=token)
            assert failed.status_code == 401

        refused = post_login(attacker, EMAIL, PASSWORD, csrf=token)
        elsewhere = post_login(colleague, EMAIL, PASSWORD, csrf=login_form_token(colleague))
        clock.at = NOW + timedelta(minutes=settings.login_lockout_minutes, seconds=1)
        later = post_login(attacker, EMAIL, PASSWORD, csrf=token)

    assert (refused.status_code, login_error(refused.text)) == (
        429,
        f"too many failed sign-ins from your address; wait {settings.login_lockout_minutes} minutes",
    )
    assert set_cookie(refused, SESSION_COOKIE) is None
    assert elsewhere.status_code == 303
    assert later.status_code == 303


# ---------------------------------------------------------------- session fixation and sign-out


def test_a_planted_session_cookie_is_replaced_and_worthless(
    anon_client: TestClient, browser: TestClient, sessions: sessionmaker[Session], user_id: int
) -> None:
    planted = "attacker-chosen-session-value"
    # the attacker's cookie sits in the victim's browser before the victim signs in
    anon_client.cookies.set(SESSION_COOKIE, planted, domain="testserver.local", path="/")

    response = post_login(anon_client, EMAIL, PASSWORD, csrf=login_form_token(anon_client))

    issued = set_cookie(response, SESSION_COOKIE)
    assert issued is not None
    assert issued.value != planted
    assert anon_client.cookies.get(SESSION_COOKIE) == issued.value
    assert me(anon_client)["name"] == EMAIL
    browser.cookies.set(SESSION_COOKIE, planted, domain="testserver.local", path="/")
    assert me(browser)["signed_in"] is False
    assert [web.secret_hash for web in web_sessions(sessions)] == [sha256(issued.value)]


def test_each_sign_in_gets_a_new_session(
    anon_client: TestClient, sessions: sessionmaker[Session], user_id: int
) -> None:
    first_csrf = sign_in(anon_client, EMAIL)
    first = anon_client.cookies.get(SESSION_COOKIE)
    anon_client.cookies.delete(SESSION_COOKIE)

    second_csrf = sign_in(anon_client, EMAIL)

    second = anon_client.cookies.get(SESSION_COOKIE)
    assert first is not None and second is not None
    assert second != first
    assert second_csrf != first_csrf
    assert [web.secret_hash for web in web_sessions(sessions)] == [sha256(first), sha256(second)]


def test_sign_out_ends_the_session_on_the_server(
    anon_client: TestClient, browser: TestClient, sessions: sessionmaker[Session], user_id: int
) -> None:
    csrf = sign_in(anon_client, EMAIL)
    old = anon_client.cookies.get(SESSION_COOKIE)
    assert old is not None

    response = anon_client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/login")
    cleared = set_cookie(response, SESSION_COOKIE)
    assert cleared is not None and (cleared.value, cleared["max-age"]) == ("", "0")
    assert web_sessions(sessions) == []
    # the old value, replayed from anywhere, is worth nothing now
    browser.cookies.set(SESSION_COOKIE, old, domain="testserver.local", path="/")
    assert me(browser)["signed_in"] is False


def test_sign_out_without_the_csrf_token_is_refused(
    anon_client: TestClient, sessions: sessionmaker[Session], user_id: int
) -> None:
    sign_in(anon_client, EMAIL)

    page = anon_client.post("/logout", follow_redirects=False)
    as_json = anon_client.post("/logout", data={"csrf_token": "forged"}, headers=JSON)

    assert page.status_code == 403
    error_of(as_json, 403, "access.csrf")
    assert len(web_sessions(sessions)) == 1
    assert me(anon_client)["name"] == EMAIL


# ---------------------------------------------------------------- sessions that stop working


def test_an_expired_session_is_refused(
    anon_client: TestClient, settings: Settings, clock: FrozenClock, user_id: int
) -> None:
    sign_in(anon_client, EMAIL)
    clock.at = NOW + timedelta(hours=settings.session_hours) - timedelta(seconds=1)
    assert me(anon_client)["name"] == EMAIL

    clock.at = NOW + timedelta(hours=settings.session_hours)
    page = anon_client.get("/account", follow_redirects=False)

    assert me(anon_client)["signed_in"] is False
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Faccount")
    error_of(anon_client.get("/api/v1/tokens"), 401, "access.sign_in_required")


def test_a_switched_off_users_session_stops_working(
    anon_client: TestClient, client: TestClient, sessions: sessionmaker[Session], user_id: int
) -> None:
    csrf = sign_in(anon_client, EMAIL)

    off = client.patch(f"/api/v1/users/{EMAIL}", json={"active": False})
    refused = anon_client.patch(
        "/api/v1/teams/payments", json={"description": "x"}, headers={"X-CSRF-Token": csrf}
    )
    back_on = client.patch(f"/api/v1/users/{EMAIL}", json={"active": True})

    assert (off.status_code, off.json()["active"]) == (200, False)
    assert me(anon_client)["signed_in"] is False
    error_of(refused, 401, "access.sign_in_required")
    assert back_on.status_code == 200
    # switching off ended the sessions for good: switching back on does not revive them
    assert me(anon_client)["signed_in"] is False
    assert web_sessions(sessions) == []


# ---------------------------------------------------------------- where sign-in leads


@pytest.mark.parametrize(
    ("next_", "lands_on"),
    [
        # a path of this site is kept, query included
        ("/services/payments-api?tab=deploys", "/services/payments-api?tab=deploys"),
        # protocol-relative URL to another host
        ("//evil.example", "/"),
        # absolute URL to another host
        ("https://evil.example", "/"),
        # backslashes that browsers read as slashes
        ("/\\evil.example", "/"),
        # another scheme
        ("javascript:alert(1)", "/"),
        # a tab or line break that browsers drop, turning the path into //evil.example
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
    ],
)
def test_next_never_leaves_the_site(visitor: TestClient, next_: str, lands_on: str) -> None:
    form = visitor.get("/login", params={"next": next_})
    response = post_login(visitor, EMAIL, PASSWORD, csrf=login_form_token(visitor), next_=next_)
    signed_in_visit = visitor.get("/login", params={"next": next_}, follow_redirects=False)

    assert f'<input type="hidden" name="next" value="{html.escape(lands_on)}">' in form.text
    assert (response.status_code, response.headers["location"]) == (303, lands_on)
    assert (signed_in_visit.status_code, signed_in_visit.headers["location"]) == (303, lands_on)


def test_a_page_sends_a_browser_to_sign_in_and_back(anon_client: TestClient, user_id: int) -> None:
    page = anon_client.get("/account", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Faccount")

    form = anon_client.get(page.headers["location"])
    response = post_login(anon_client, EMAIL, PASSWORD, csrf=form_csrf(form.text), next_="/account")

    assert (response.status_code, response.headers["location"]) == (303, "/account")
    assert session_csrf(anon_client)


def test_over_https_the_session_cookie_is_secure(db_url: str, tmp_path: Path, clock: FrozenClock) -> None:
    settings = Settings(database_url=db_url, git_cache_dir=tmp_path / "git", base_url="https://qd.example")
    app = create_app(settings, clock=clock)
    try:
        make_user(app.state.runtime.sessions, clock, EMAIL, password=PASSWORD, role=GlobalRole.MEMBER)
        with TestClient(app, base_url="https://testserver") as https_browser:
            response = post_login(https_browser, EMAIL, PASSWORD, csrf=login_form_token(https_browser))
    finally:
        app.state.runtime.close()

    cookie = set_cookie(response, SESSION_COOKIE)
    assert cookie is not None
    assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (True, True, "lax")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_a_nul_byte_in_the_email_is_refused_and_signs_nobody_in(
    app_under_test: FastAPI, user_id: int
) -> None:
    with TestClient(app_under_test, raise_server_exceptions=False) as careless:
        response = post_login(careless, "olga\x00@example.com", PASSWORD, csrf=login_form_token(careless))

    assert response.status_code == 422
    assert "NUL character" in response.text
    assert set_cookie(response, SESSION_COOKIE) is None


def test_the_password_check_itself_treats_a_nul_as_a_failed_attempt(
    sessions: sessionmaker[Session], clock: FrozenClock, settings: Settings, user_id: int
) -> None:
    """Behind the request filter, too: the e-mail is cleaned, the attempt counted, nobody signed in."""
    with transaction(sessions) as session:
        user = access.authenticate(
            session,
            email="olga\x00@example.com",
            password=PASSWORD,
            ip="10.0.0.1",
            at=clock.now(),
            settings=settings,
        )
    with sessions() as session:
        attempts = session.scalars(select(LoginAttempt.email).where(~LoginAttempt.succeeded)).all()

    assert (user, list(attempts)) == (None, ["olga@example.com"])
