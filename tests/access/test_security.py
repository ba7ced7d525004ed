"""Cross-cutting security: response headers, no API token in any log line, CSRF on session-authenticated
JSON writes, and injection attempts in every catalog filter. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.catalog.models import Service
from quarterdeck.clock import FrozenClock
from tests.access.helpers import (
    PASSWORD,
    Json,
    SharedApp,
    audit_log,
    bearer,
    cheap_passwords,
    create_service,
    create_team,
    shared_app,
    sign_in,
)
from tests.conftest import make_user
from tests.web.api_helpers import error_of

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


@pytest.fixture
def admin_browsers(
    app_under_test: Any, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An admin signed in twice, in two browsers; the first browser and each session's CSRF token."""
    make_user(sessions, clock, ADMIN_PERSON, password=PASSWORD, role=GlobalRole.ADMIN)
    create_team(client, "payments")
    create_service(client, "payments-api", "payments")
    with TestClient(app_under_test) as browser, TestClient(app_under_test) as other:
        tokens = {"right": sign_in(browser, ADMIN_PERSON), "other-session": sign_in(other, ADMIN_PERSON)}
        yield browser, {**tokens, "wrong": "x" * 43, "empty": ""}


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
    admin_browsers: tuple[TestClient, dict[str, str]],
    client: TestClient,
    sessions: sessionmaker[Session],
    method: str,
    path: str,
    body: Json | None,
    csrf: str | None,
    status: int,
    code: str | None,
) -> None:
    browser, tokens = admin_browsers
    earlier = audit_log(sessions)
    headers = {} if csrf is None else {"X-CSRF-Token": tokens[csrf]}

    response = browser.request(method, path, json=body, headers=headers)

    if code is None:
        assert response.status_code == status, response.text
        return
    error_of(response, status, code)
    assert audit_log(sessions) == earlier
    assert client.get("/api/v1/services/payments-api").json()["tier"] is None


def test_a_cross_site_text_plain_post_is_refused(
    admin_browsers: tuple[TestClient, dict[str, str]], sessions: sessionmaker[Session]
) -> None:
    """An HTML form can post any body as text/plain without a preflight; it still carries no token."""
    browser, _tokens = admin_browsers
    earlier = audit_log(sessions)

    response = browser.post(
        "/api/v1/tokens",
        content=b'{"name": "stolen", "scopes": ["admin"]}',
        headers={"Content-Type": "text/plain"},
    )

    error_of(response, 403, "access.csrf")
    assert audit_log(sessions) == earlier


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
        page = client.get("/services", params={name: payload})
        assert api.status_code == 200, (name, api.text)
        assert sorted(item["slug"] for item in api.json()["items"]) == expected, name
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
def test_a_nul_byte_in_a_filter_is_no_server_error(
    request: pytest.FixtureRequest, portal: SharedApp, path: str, param: str
) -> None:
    request.applymarker(
        pytest.mark.xfail(
            portal.db_url.startswith("postgresql") and path != "/api/v1/search",
            reason="BUG: filter values go to PostgreSQL unchecked; psycopg refuses strings with NUL "
            "(DataError) and the route answers 500 instead of 200 with no matches (or 422)",
            strict=True,
        )
    )
    with TestClient(
        portal.app, headers=dict(portal.client.headers), raise_server_exceptions=False
    ) as careful:
        response = careful.get(path, params={param: "pay\x00ments"})

    assert response.status_code == 200, response.text
