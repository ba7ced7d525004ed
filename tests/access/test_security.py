"""Cross-cutting security: response headers, no API token in any log line, CSRF on session-authenticated
JSON writes, and injection attempts in every catalog filter. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.catalog.models import Service
from quarterdeck.clock import FrozenClock
from tests.access.helpers import PASSWORD, SharedApp, cheap_passwords, shared_app, sign_in
from tests.conftest import make_token, make_user
from tests.helpers import Json, audit_log, bearer, create_service, create_team, error_of

ADMIN_PERSON = "ada@example.com"
SERVICES: dict[str, Json] = {
    "payments-api": {
        "owner": "payments",
        "tier": 1,
        "lifecycle": "production",
        "tags": ["pci", "python"],
        "system": "payments",
        "description": "100% uptime; snake_case names",
    },
    "search-api": {"owner": "search", "tier": 2, "lifecycle": "experimental", "tags": ["go"]},
    "legacy-billing": {
        "owner": "payments",
        "lifecycle": "deprecated",
        "description": "O'Brien's code \\ beware",
    },
}


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_passwords(monkeypatch)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    """Two teams and the SERVICES, shared by this module's read-only tests."""
    with shared_app(request, tmp_path_factory.mktemp("security")) as shared:
        for slug in ("payments", "search"):
            create_team(shared.client, slug)
        for slug, fields in SERVICES.items():
            create_service(shared.client, slug, **fields)
        yield shared


# ---------------------------------------------------------------- response headers


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


@pytest.mark.parametrize(
    ("path", "signed_in", "status"),
    [
        # a page, for a visitor
        ("/login", False, 200),
        # a page, for a signed-in admin
        ("/services", True, 200),
        # a JSON answer
        ("/api/v1/me", True, 200),
        # a JSON error
        ("/api/v1/services", False, 401),
        # a page that is not there
        ("/no-such-page", True, 404),
        # a static asset
        ("/static/app.js", False, 200),
    ],
)
def test_every_answer_carries_the_security_headers(
    portal: SharedApp, path: str, signed_in: bool, status: int
) -> None:
    with TestClient(portal.app, headers=dict(portal.client.headers) if signed_in else None) as browser:
        response = browser.get(path, follow_redirects=False)

    assert response.status_code == status
    csp = response.headers["content-security-policy"]
    directives = csp_directives(csp)
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in response.headers  # plain http here; https in test_sign_in
    assert len(response.headers.get_list("content-security-policy")) == 1


def test_pages_carry_no_inline_script_the_csp_would_block(portal: SharedApp) -> None:
    for path in ("/", "/services", "/services/payments-api", "/teams/payments", "/admin/audit", "/login"):
        page = portal.client.get(path)
        assert page.status_code == 200, path
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) == [], path
        assert re.findall(r"<[^>]+\son[a-z]+\s*=", page.text) == [], path


# ---------------------------------------------------------------- tokens never in the logs


def test_api_tokens_and_passwords_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture,
    client: TestClient,
    anon_client: TestClient,
    sessions: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    make_user(sessions, clock, ADMIN_PERSON, password=PASSWORD)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")

    created = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}).json()
    raw = created["token"]
    used = anon_client.get("/api/v1/services", headers=bearer(raw))
    revoked = client.delete(f"/api/v1/tokens/{created['id']}")
    after_revoke = anon_client.get("/api/v1/services", headers=bearer(raw))
    made_up = "qd_" + secrets.token_urlsafe(32)
    bad = anon_client.get("/api/v1/services", headers=bearer(made_up))
    wrong_scheme = anon_client.get("/api/v1/services", headers={"Authorization": f"Token {raw}"})
    sign_in(anon_client, ADMIN_PERSON)

    statuses = [r.status_code for r in (used, revoked, after_revoke, bad, wrong_scheme)]
    assert statuses == [200, 200, 401, 401, 401]
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    # the capture works: the token's row was logged as it was written, with its hash and shown prefix
    assert "INSERT INTO api_tokens" in logged
    assert raw[:10] in logged
    for secret in (raw, raw[10:], made_up, made_up[10:], PASSWORD):
        assert secret not in logged
        assert secret not in after_revoke.text + bad.text + wrong_scheme.text


# ---------------------------------------------------------------- CSRF on session-authenticated writes


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def admin_browsers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SharedApp, TestClient, dict[str, str]]]:
    """An admin signed in twice, in two browsers, and a service to edit: the first browser and the CSRF
    token of each session. Shared by the rows below, which change nothing but the service's tier."""
    with shared_app(request, tmp_path_factory.mktemp("csrf")) as shared:
        make_user(shared.sessions, shared.clock, ADMIN_PERSON, password=PASSWORD, role=GlobalRole.ADMIN)
        create_team(shared.client, "payments")
        create_service(shared.client, "payments-api", "payments")
        with TestClient(shared.app) as browser, TestClient(shared.app) as other:
            tokens = {"right": sign_in(browser, ADMIN_PERSON), "other-session": sign_in(other, ADMIN_PERSON)}
            yield shared, browser, {**tokens, "wrong": "x" * 43, "empty": ""}


@pytest.mark.parametrize(
    ("method", "path", "body", "csrf", "status", "code"),
    [
        # an edit with no token at all
        ("PATCH", "/api/v1/services/payments-api", {"tier": 2}, None, 403, "access.csrf"),
        # a made-up token
        ("PATCH", "/api/v1/services/payments-api", {"tier": 2}, "wrong", 403, "access.csrf"),
        # an empty header
        ("PATCH", "/api/v1/services/payments-api", {"tier": 2}, "empty", 403, "access.csrf"),
        # the same user's token from another session
        ("PATCH", "/api/v1/services/payments-api", {"tier": 2}, "other-session", 403, "access.csrf"),
        # making a token, the prize of a CSRF attack
        ("POST", "/api/v1/tokens", {"name": "stolen", "scopes": ["admin"]}, None, 403, "access.csrf"),
        # deleting
        ("DELETE", "/api/v1/services/payments-api", None, None, 403, "access.csrf"),
        # switching a user off
        ("PATCH", f"/api/v1/users/{ADMIN_PERSON}", {"active": False}, None, 403, "access.csrf"),
        # the session's own token lets the edit through
        ("PATCH", "/api/v1/services/payments-api", {"tier": 2}, "right", 200, None),
        # reading needs none
        ("GET", "/api/v1/services/payments-api", None, None, 200, None),
    ],
)
def test_session_writes_need_the_sessions_csrf_header(
    admin_browsers: tuple[SharedApp, TestClient, dict[str, str]],
    method: str,
    path: str,
    body: Json | None,
    csrf: str | None,
    status: int,
    code: str | None,
) -> None:
    shared, browser, tokens = admin_browsers
    earlier = audit_log(shared.sessions)
    service = shared.client.get("/api/v1/services/payments-api").json()
    headers = {} if csrf is None else {"X-CSRF-Token": tokens[csrf]}

    response = browser.request(method, path, json=body, headers=headers)

    if code is None:
        assert response.status_code == status, response.text
        return
    error_of(response, status, code)
    assert audit_log(shared.sessions) == earlier
    assert shared.client.get("/api/v1/services/payments-api").json() == service
    users = shared.client.get("/api/v1/users").json()
    assert [u["active"] for u in users if u["email"] == ADMIN_PERSON] == [True]
    assert browser.get("/api/v1/me").json()["name"] == ADMIN_PERSON


def test_a_cross_site_text_plain_post_is_refused(
    admin_browsers: tuple[SharedApp, TestClient, dict[str, str]],
) -> None:
    """An HTML form can post any body as text/plain without a preflight; it still carries no token."""
    shared, browser, _tokens = admin_browsers
    earlier = audit_log(shared.sessions)

    response = browser.post(
        "/api/v1/tokens",
        content=b'{"name": "stolen", "scopes": ["admin"]}',
        headers={"Content-Type": "text/plain"},
    )

    error_of(response, 403, "access.csrf")
    assert audit_log(shared.sessions) == earlier


# ---------------------------------------------------------------- injection attempts in catalog filters

MATCHES: dict[str, Callable[[str, Json, str], bool]] = {
    "owner": lambda slug, s, p: s["owner"] == p.lower(),
    "lifecycle": lambda slug, s, p: s.get("lifecycle", "production") == p.lower(),
    "tag": lambda slug, s, p: p.lower() in s.get("tags", []),
    "system": lambda slug, s, p: s.get("system") == p.lower(),
    "type": lambda slug, s, p: p.lower() == "service",
    "q": lambda slug, s, p: any(p.lower() in v.lower() for v in (slug, s.get("description", ""))),
}
"""What each list filter means, literally (the title is the slug here): the oracle answers are held to."""


def page_count(page: str) -> int:
    found = re.search(r'<p class="muted" id="service-count">(\d+) services?</p>', page)
    assert found is not None
    return int(found.group(1))


@pytest.mark.parametrize(
    "payload",
    [
        # the classic tautology
        "' OR 1=1 --",
        # a tautology without quotes
        "1 OR 1=1",
        # LIKE's any-string wildcard (one description has a literal %)
        "%",
        # LIKE's any-character wildcard (one description has a literal _)
        "_",
        # the LIKE escape character (one description has a literal backslash)
        "\\",
        # a lone quote (one description has an apostrophe)
        "'",
        # a stacked statement
        '"; DROP TABLE services; --',
        # a UNION
        "x' UNION SELECT slug, slug FROM services --",
    ],
)
def test_catalog_filters_match_payloads_literally(portal: SharedApp, payload: str) -> None:
    client = portal.client
    everything = client.get("/api/v1/services", params={"per_page": 500}).json()

    for name, matches in MATCHES.items():
        expected = sorted(slug for slug, fields in SERVICES.items() if matches(slug, fields, payload))
        api = client.get("/api/v1/services", params={name: payload})
        assert api.status_code == 200, (name, api.text)
        assert sorted(item["slug"] for item in api.json()["items"]) == expected, name
        if name != "type":  # the page has no type filter
            page = client.get("/services", params={name: payload})
            assert (page.status_code, page_count(page.text)) == (200, len(expected)), name
    error_of(client.get("/api/v1/services", params={"tier": payload}), 422, "request.invalid")
    assert client.get("/services", params={"tier": payload}).status_code == 422
    hits = client.get("/api/v1/search", params={"q": payload})
    assert hits.status_code == 200, hits.text
    assert {hit["slug"] for hit in hits.json()} <= set(SERVICES) | {"payments", "search"}
    assert client.get("/search", params={"q": payload}).status_code == 200
    assert client.get("/api/v1/services", params={"per_page": 500}).json() == everything
    with portal.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Service)) == len(SERVICES)


def test_the_literal_oracle_finds_what_it_should(portal: SharedApp) -> None:
    """The payload test is not vacuous: literal wildcard characters do match where they were written."""
    found = {
        p: sorted(i["slug"] for i in portal.client.get("/api/v1/services", params={"q": p}).json()["items"])
        for p in ("%", "_", "\\", "'")
    }

    assert found == {
        "%": ["payments-api"],
        "_": ["payments-api"],
        "\\": ["legacy-billing"],
        "'": ["legacy-billing"],
    }


@pytest.mark.parametrize(
    ("path", "param"),
    [
        # the service list's exact-match filters
        ("/api/v1/services", "owner"),
        ("/api/v1/services", "lifecycle"),
        ("/api/v1/services", "tag"),
        ("/api/v1/services", "system"),
        # its text filter
        ("/api/v1/services", "q"),
        # the services page
        ("/services", "q"),
        # search
        ("/api/v1/search", "q"),
        # the audit log's filters
        ("/api/v1/audit", "actor"),
    ],
)
def test_a_nul_byte_in_a_filter_is_refused_not_a_server_error(
    portal: SharedApp, path: str, param: str
) -> None:
    with TestClient(
        portal.app, headers=dict(portal.client.headers), raise_server_exceptions=False
    ) as careful:
        response = careful.get(path, params={param: "pay\x00ments"})

    assert response.status_code == 422, response.text
    assert "NUL character" in response.text


# ---------------------------------------------------------------- no account enumeration


def test_the_team_role_api_does_not_tell_members_who_has_an_account(
    client: TestClient, anon_client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "max@example.com", teams={"payments": "member"})
    make_user(sessions, clock, "otto@example.com")
    token = bearer(make_token(sessions, clock, user="max@example.com", scopes=["read"]))

    known = anon_client.put(
        "/api/v1/users/otto@example.com/teams/search", json={"role": "owner"}, headers=token
    )
    unknown = anon_client.put(
        "/api/v1/users/nobody@example.com/teams/search", json={"role": "owner"}, headers=token
    )

    error_of(known, 403, "access.forbidden")
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
