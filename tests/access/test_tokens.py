"""API tokens through the API and the CLI: shown once, stored hashed, scoped, expiring, revocable, and who
may manage whose. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from quarterdeck.access.models import ApiToken
from quarterdeck.access.tokens import parse_expiry
from quarterdeck.cli import app as cli_app
from quarterdeck.clock import FrozenClock
from quarterdeck.db import Base
from quarterdeck.errors import Invalid
from tests.access.helpers import PASSWORD, SharedApp, cheap_passwords, me, sha256, shared_app, sign_in
from tests.conftest import ADMIN_EMAIL, NOW, make_token, make_user
from tests.helpers import Json, audit_log, bearer, create_service, create_team, error_of

MEMBER = "max@example.com"
OTHER = "otto@example.com"
ALL_SCOPES = "read, write:catalog, deploy, page, flags, admin"
UNAUTHENTICATED = 'Bearer realm="quarterdeck"'


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_passwords(monkeypatch)


def make_catalog(client: TestClient) -> None:
    """Two teams with a service each."""
    create_team(client, "payments")
    create_team(client, "search")
    create_service(client, "payments-api", "payments")
    create_service(client, "search-api", "search")


@pytest.fixture
def catalog(client: TestClient) -> None:
    make_catalog(client)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def teams_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedApp]:
    """The catalog and a member of payments, shared by tests that only add tokens of their own."""
    with shared_app(request, tmp_path_factory.mktemp("tokens")) as shared:
        make_catalog(shared.client)
        make_user(shared.sessions, shared.clock, MEMBER, teams={"payments": "member"})
        yield shared


@pytest.fixture
def member(sessions: sessionmaker[Session], clock: FrozenClock) -> int:
    return make_user(sessions, clock, MEMBER, password=PASSWORD, teams={"payments": "member"})


def create(client: TestClient, headers: dict[str, str] | None = None, **body: object) -> Json:
    response = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"], **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


def row_of(sessions: sessionmaker[Session], token_id: int) -> ApiToken:
    with sessions() as session:
        return session.get_one(ApiToken, token_id)


# ---------------------------------------------------------------- shown once, stored hashed


def test_create_shows_the_secret_once_and_listing_never_does(client: TestClient) -> None:
    admin_label = me(client)["name"]

    created = create(client, scopes=["read", "deploy"], expires="30d")
    listed = client.get("/api/v1/tokens")
    everyone = client.get("/api/v1/tokens", params={"all": "true"})

    raw = created.pop("token")
    assert raw.startswith("qd_") and len(raw) == 46
    assert created == {
        "id": 2,
        "name": "ci",
        "prefix": raw[:10],
        "scopes": ["deploy", "read"],
        "user": ADMIN_EMAIL,
        "team": None,
        "created_by": admin_label,
        "created_at": "2026-11-25T12:00:00Z",
        "expires_at": "2026-12-25T12:00:00Z",
        "last_used_at": None,
        "revoked_at": None,
        "active": True,
    }
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [1, 2]
    assert listed.json()[1] == created
    for answer in (listed, everyone):
        assert raw not in answer.text
        assert raw[10:] not in answer.text
        assert all("token" not in t for t in answer.json())


def test_the_database_holds_only_a_sha256_of_the_token(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    created = create(client, scopes=["read"])
    raw = created["token"]
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200

    assert row_of(sessions, created["id"]).secret_hash == sha256(raw)
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                assert raw[10:] not in repr(tuple(row)), table.name


# ---------------------------------------------------------------- scopes


@pytest.mark.parametrize(
    ("scopes", "method", "path", "body", "status", "code"),
    [
        # a read token reads the catalog
        (["read"], "GET", "/api/v1/services/payments-api", None, 200, None),
        # ... but may not edit a service of its user's own team
        (
            ["read"],
            "PATCH",
            "/api/v1/services/payments-api",
            {"lifecycle": "deprecated"},
            403,
            "access.forbidden",
        ),
        # ... nor delete one
        (["read"], "DELETE", "/api/v1/services/payments-api", None, 403, "access.forbidden"),
        # a deploy token does not write the catalog either
        (["deploy"], "PATCH", "/api/v1/services/payments-api", {"tier": 2}, 403, "access.forbidden"),
        # a catalog token edits its user's team's service
        (["write:catalog"], "PATCH", "/api/v1/services/payments-api", {"tier": 2}, 200, None),
        # ... never another team's: the token is no more than its user
        (["write:catalog"], "PATCH", "/api/v1/services/search-api", {"tier": 2}, 403, "access.forbidden"),
        # minting tokens with a token needs the admin scope
        (
            ["write:catalog"],
            "POST",
            "/api/v1/tokens",
            {"name": "x", "scopes": ["read"]},
            403,
            "access.forbidden",
        ),
        # the audit log is for admins
        (["read", "write:catalog"], "GET", "/api/v1/audit", None, 403, "access.forbidden"),
    ],
)
def test_scopes_limit_what_a_token_does(
    teams_app: SharedApp,
    scopes: list[str],
    method: str,
    path: str,
    body: Json | None,
    status: int,
    code: str | None,
) -> None:
    token = make_token(teams_app.sessions, teams_app.clock, user=MEMBER, scopes=scopes)

    response = teams_app.client.request(method, path, json=body, headers=bearer(token))

    if code is None:
        assert response.status_code == status, response.text
    else:
        error_of(response, status, code)


def test_a_refused_scope_is_named(teams_app: SharedApp) -> None:
    token = make_token(teams_app.sessions, teams_app.clock, user=MEMBER, scopes=["read"])

    refused = teams_app.client.patch("/api/v1/services/payments-api", json={"tier": 2}, headers=bearer(token))

    error = error_of(refused, 403, "access.forbidden")
    assert (error["message"], error["details"]) == (
        "this token lacks the 'write:catalog' scope",
        {"action": "catalog.edit"},
    )


@pytest.mark.parametrize(
    ("scopes", "status", "code", "message"),
    [
        # an unknown scope is named, with the ones that exist
        (["read", "bogus"], 422, "access.bad_scope", f"unknown scope 'bogus': expected one of {ALL_SCOPES}"),
        # scopes may come comma-separated; a bad one among them is still named
        (["read,deploys"], 422, "access.bad_scope", f"unknown scope 'deploys': expected one of {ALL_SCOPES}"),
        # blank scopes are no scopes
        (["  "], 422, "access.bad_scope", "a token needs at least one scope"),
        # the body needs at least one
        ([], 422, "request.invalid", "scopes: List should have at least 1 item after validation, not 0"),
    ],
)
def test_bad_scopes_are_refused(
    teams_app: SharedApp, scopes: list[str], status: int, code: str, message: str
) -> None:
    client, sessions = teams_app.client, teams_app.sessions
    before = audit_log(sessions)

    response = client.post("/api/v1/tokens", json={"name": "ci", "scopes": scopes})

    assert error_of(response, status, code)["message"] == message
    assert [t["id"] for t in client.get("/api/v1/tokens").json()] == [1]
    assert audit_log(sessions) == before


# ---------------------------------------------------------------- expiry


def test_a_token_expires(client: TestClient, anon_client: TestClient, clock: FrozenClock) -> None:
    raw = create(client, name="monthly", expires="30d")["token"]

    clock.at = NOW + timedelta(days=30) - timedelta(seconds=1)
    still_good = anon_client.get("/api/v1/me", headers=bearer(raw))
    clock.at = NOW + timedelta(days=30, seconds=1)
    expired = anon_client.get("/api/v1/me", headers=bearer(raw))

    assert still_good.json()["name"] == "token:monthly"
    error = error_of(expired, 401, "access.token_expired")
    assert error["message"] == "the API token 'monthly' has expired"
    assert expired.headers["www-authenticate"] == UNAUTHENTICATED
    assert client.get("/api/v1/tokens").json()[1]["active"] is False


def test_a_token_that_never_expires(client: TestClient, anon_client: TestClient, clock: FrozenClock) -> None:
    created = create(client, expires="never")
    clock.at = NOW + timedelta(days=3650)

    assert created["expires_at"] is None
    assert me(anon_client, bearer(created["token"]))["signed_in"] is True


@pytest.mark.parametrize(
    "expires",
    [
        # a number without a unit
        "30",
        # a unit without a number
        "d",
    ],
)
def test_bad_expiry_is_refused_through_the_api(
    client: TestClient, sessions: sessionmaker[Session], expires: str
) -> None:
    before = audit_log(sessions)

    response = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"], "expires": expires})

    error = error_of(response, 422, "access.bad_expiry")
    assert error["message"] == f"expiry {expires!r} is not a duration like 12h, 30d or 8w (or 'never')"
    assert error["details"] == [{"field": "expires", "message": "expected 12h, 30d, 8w or never"}]
    assert audit_log(sessions) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # no unit
        ("30", "expiry '30' is not a duration like 12h, 30d or 8w (or 'never')"),
        # zero of anything is no token at all
        ("0d", "expiry '0d' is not a duration like 12h, 30d or 8w (or 'never')"),
        # years are not a unit
        ("1y", "expiry '1y' is not a duration like 12h, 30d or 8w (or 'never')"),
        # negative
        ("-1d", "expiry '-1d' is not a duration like 12h, 30d or 8w (or 'never')"),
        # a space inside
        ("30 d", "expiry '30 d' is not a duration like 12h, 30d or 8w (or 'never')"),
        # words
        ("soon", "expiry 'soon' is not a duration like 12h, 30d or 8w (or 'never')"),
        # empty
        ("", "expiry '' is not a duration like 12h, 30d or 8w (or 'never')"),
        # one day more than the longest allowed
        ("367d", "expiry '367d' is longer than a year"),
        # in weeks
        ("53w", "expiry '53w' is longer than a year"),
    ],
)
def test_parse_expiry_refuses(text: str, message: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse_expiry(text, now=NOW)

    assert (raised.value.code, raised.value.message) == ("access.bad_expiry", message)


@pytest.mark.parametrize(
    ("text", "expires_at"),
    [
        # hours
        ("12h", NOW + timedelta(hours=12)),
        # days, with spaces and capitals forgiven
        (" 30D ", NOW + timedelta(days=30)),
        # weeks
        ("8w", NOW + timedelta(weeks=8)),
        # the longest allowed, in hours
        ("8784h", NOW + timedelta(days=366)),
        # never
        ("never", None),
        # no expiry given at all
        (None, None),
    ],
)
def test_parse_expiry_accepts(text: str | None, expires_at: datetime | None) -> None:
    assert parse_expiry(text, now=NOW) == expires_at


# ---------------------------------------------------------------- revoking


def test_revoke_is_immediate_idempotent_and_audited_once(
    client: TestClient, anon_client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    created = create(client, name="leaked")

    first = client.delete(f"/api/v1/tokens/{created['id']}")
    refused = anon_client.get("/api/v1/services", headers=bearer(created["token"]))
    clock.at = NOW + timedelta(hours=1)
    second = client.delete(f"/api/v1/tokens/{created['id']}")

    assert first.status_code == 200
    assert (first.json()["revoked_at"], first.json()["active"]) == ("2026-11-25T12:00:00Z", False)
    error = error_of(refused, 401, "access.token_revoked")
    assert error["message"] == "the API token 'leaked' was revoked"
    assert refused.headers["www-authenticate"] == UNAUTHENTICATED
    assert second.json() == first.json()
    entries = [e for e in audit_log(sessions) if e.target_id == str(created["id"])]
    assert [(e.action, e.note, e.at) for e in entries] == [
        ("token.create", None, NOW),
        ("token.revoke", "leaked", NOW),
    ]


def test_revoking_an_unknown_token_is_404(client: TestClient) -> None:
    error = error_of(client.delete("/api/v1/tokens/999"), 404, "access.unknown_token")
    assert error["message"] == "no token 999"


# ---------------------------------------------------------------- who manages whose tokens


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def member_browser(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SharedApp, TestClient, dict[str, str]]]:
    """The member (user 2) signed in with a browser session, with the CSRF header their page scripts
    send; token 2 is another user's, token 3 a service token. Shared by refusals only."""
    with shared_app(request, tmp_path_factory.mktemp("members")) as shared:
        make_user(shared.sessions, shared.clock, MEMBER, password=PASSWORD, teams={"payments": "member"})
        make_user(shared.sessions, shared.clock, OTHER)
        make_token(shared.sessions, shared.clock, user=OTHER, scopes=["read"])
        make_token(shared.sessions, shared.clock, user=None, scopes=["read"])
        with TestClient(shared.app) as browser:
            yield shared, browser, {"X-CSRF-Token": sign_in(browser, MEMBER)}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        # someone else's token
        (
            "DELETE",
            "/api/v1/tokens/{other}",
            None,
            403,
            "access.forbidden",
            "you may manage only your own tokens",
        ),
        # a service token (no user) is the admins'
        ("DELETE", "/api/v1/tokens/{service}", None, 403, "access.forbidden", "only admins may do this"),
        # making a service token
        (
            "POST",
            "/api/v1/tokens",
            {"name": "bot", "scopes": ["read"], "service": True},
            403,
            "access.forbidden",
            "only admins may do this",
        ),
        # making a token that acts as someone else
        (
            "POST",
            "/api/v1/tokens",
            {"name": "sneaky", "scopes": ["read"], "user": OTHER},
            403,
            "access.forbidden",
            "you may manage only your own tokens",
        ),
        # an admin scope for a non-admin
        (
            "POST",
            "/api/v1/tokens",
            {"name": "up", "scopes": ["admin"]},
            422,
            "access.bad_scope",
            f"{MEMBER} is not an admin: an admin scope would give nothing",
        ),
        # everybody's tokens
        ("GET", "/api/v1/tokens?all=true", None, 403, "access.forbidden", "only admins may do this"),
    ],
)
def test_a_member_manages_only_their_own_tokens(
    member_browser: tuple[SharedApp, TestClient, dict[str, str]],
    method: str,
    path: str,
    body: Json | None,
    status: int,
    code: str,
    message: str,
) -> None:
    shared, browser, csrf = member_browser
    before = audit_log(shared.sessions)

    response = browser.request(method, path.format(other=2, service=3), json=body, headers=csrf)

    assert error_of(response, status, code)["message"] == message
    assert audit_log(shared.sessions) == before
    with shared.sessions() as session:
        tokens = session.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        # the admin's, the other user's and the service token: all there, none revoked
        assert [(t.id, t.user_id, t.revoked_at) for t in tokens] == [
            (1, 1, None),
            (2, 3, None),
            (3, None, None),
        ]


def test_a_member_makes_lists_and_revokes_their_own_token(
    anon_client: TestClient, member: int, sessions: sessionmaker[Session]
) -> None:
    browser, csrf = anon_client, {"X-CSRF-Token": sign_in(anon_client, MEMBER)}

    created = browser.post("/api/v1/tokens", json={"name": "mine", "scopes": ["write:catalog"]}, headers=csrf)
    listed = browser.get("/api/v1/tokens")
    revoked = browser.delete(f"/api/v1/tokens/{created.json()['id']}", headers=csrf)

    assert created.status_code == 201
    assert (created.json()["user"], created.json()["created_by"]) == (MEMBER, MEMBER)
    assert [t["name"] for t in listed.json()] == ["mine"]
    assert revoked.json()["active"] is False
    assert [(e.actor, e.action) for e in audit_log(sessions)[-2:]] == [
        (MEMBER, "token.create"),
        (MEMBER, "token.revoke"),
    ]


def test_a_switched_off_users_token_stops_working(
    client: TestClient,
    anon_client: TestClient,
    member: int,
    sessions: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    token = make_token(sessions, clock, user=MEMBER, scopes=["read"])
    assert me(anon_client, bearer(token))["name"].startswith("token:")

    assert client.patch(f"/api/v1/users/{MEMBER}", json={"active": False}).status_code == 200

    error_of(anon_client.get("/api/v1/me", headers=bearer(token)), 401, "access.inactive")


def test_a_team_limited_service_token_stays_in_its_team(
    client: TestClient, anon_client: TestClient, catalog: None
) -> None:
    created = create(client, name="payments-bot", service=True, team="payments", scopes=["admin"])

    response = anon_client.patch(
        "/api/v1/services/search-api", json={"tier": 1}, headers=bearer(created["token"])
    )

    error_of(response, 403, "access.forbidden")


# ---------------------------------------------------------------- last use and bad headers


def test_last_used_at_is_set_on_use_at_most_once_a_minute(
    client: TestClient, anon_client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    created = create(client)
    assert row_of(sessions, created["id"]).last_used_at is None

    me(anon_client, bearer(created["token"]))
    first = row_of(sessions, created["id"]).last_used_at
    clock.at = NOW + timedelta(seconds=30)
    me(anon_client, bearer(created["token"]))
    unchanged = row_of(sessions, created["id"]).last_used_at
    clock.at = NOW + timedelta(seconds=61)
    me(anon_client, bearer(created["token"]))
    later = row_of(sessions, created["id"]).last_used_at

    assert (first, unchanged, later) == (NOW, NOW, NOW + timedelta(seconds=61))


@pytest.mark.parametrize(
    ("header", "code", "message"),
    [
        # another scheme
        (
            "Basic dXNlcjpwYXNzd29yZA==",
            "access.bad_authorization",
            "the Authorization header must be 'Bearer <token>'",
        ),
        # the scheme without a token
        ("Bearer", "access.bad_authorization", "the Authorization header must be 'Bearer <token>'"),
        # a token without the scheme
        (
            "qd_abcdefghijklmnop",
            "access.bad_authorization",
            "the Authorization header must be 'Bearer <token>'",
        ),
        # a token nobody made; the answer does not repeat it
        ("Bearer qd_made-up-token-value", "access.bad_token", "the API token is not valid"),
    ],
)
def test_a_bad_authorization_header_is_401_with_www_authenticate(
    teams_app: SharedApp, header: str, code: str, message: str
) -> None:
    response = teams_app.client.get("/api/v1/services", headers={"Authorization": header})

    assert error_of(response, 401, code)["message"] == message
    assert response.headers["www-authenticate"] == UNAUTHENTICATED
    assert "made-up" not in response.text


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli(db_url: str) -> CliRunner:
    return CliRunner(env={"QD_DATABASE_URL": db_url})


def test_cli_creates_a_token_that_works_against_the_app(
    cli: CliRunner, anon_client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    result = cli.invoke(
        cli_app, ["tokens", "create", "--name", "ci", "--scope", "deploy", "--expires", "30d"]
    )
    clock.at = datetime.now(UTC)  # the CLI runs on the real clock

    assert result.exit_code == 0, result.output
    raw = result.stdout.strip()
    assert raw.startswith("qd_") and len(raw) == 46 and "\n" not in raw
    assert result.stderr.startswith("token 1 'ci': scopes deploy; expires ")
    assert me(anon_client, bearer(raw)) == {
        "signed_in": True,
        "kind": "token",
        "name": "token:ci",
        "role": "member",
        "teams": {},
        "scopes": ["deploy"],
    }
    token = row_of(sessions, 1)
    assert token.secret_hash == sha256(raw)
    assert token.expires_at is not None and token.created_at is not None
    assert token.expires_at - token.created_at == timedelta(days=30)
    assert [(e.actor, e.actor_kind, e.action) for e in audit_log(sessions)] == [
        ("system:cli", "system", "token.create")
    ]


def test_cli_lists_tokens_without_their_secret(cli: CliRunner) -> None:
    raw = cli.invoke(cli_app, ["tokens", "create", "--name", "ci", "--scope", "read"]).stdout.strip()

    result = cli.invoke(cli_app, ["tokens", "list", "--json"])

    assert result.exit_code == 0, result.output
    assert raw not in result.output and raw[10:] not in result.output
    [listed] = json.loads(result.stdout)
    assert (listed["id"], listed["name"], listed["prefix"], listed["scopes"], listed["active"]) == (
        1,
        "ci",
        raw[:10],
        ["read"],
        True,
    )
    assert "token" not in listed


def test_cli_revokes_a_token(cli: CliRunner, anon_client: TestClient, clock: FrozenClock) -> None:
    raw = cli.invoke(cli_app, ["tokens", "create", "--name", "ci", "--scope", "read"]).stdout.strip()
    clock.at = datetime.now(UTC)

    first = cli.invoke(cli_app, ["tokens", "revoke", "1"])
    again = cli.invoke(cli_app, ["tokens", "revoke", "1"])

    assert (first.exit_code, first.stdout) == (0, "token 1 'ci' revoked\n")
    assert (again.exit_code, again.stdout) == (0, "token 1 'ci' revoked\n")
    error_of(anon_client.get("/api/v1/me", headers=bearer(raw)), 401, "access.token_revoked")


def test_cli_create_admin_then_signing_in_works(
    cli: CliRunner, anon_client: TestClient, sessions: sessionmaker[Session]
) -> None:
    args = ["users", "create-admin", "--email", "x@y.example", "--password", "a long enough secret"]

    result = cli.invoke(cli_app, args)
    again = cli.invoke(cli_app, args)
    if_missing = cli.invoke(cli_app, [*args, "--if-missing"])

    assert (result.exit_code, result.stdout) == (0, "admin x@y.example (id 1) ready\n")
    assert (again.exit_code, again.stderr) == (1, "error: a user 'x@y.example' already exists\n")
    assert (if_missing.exit_code, if_missing.stdout) == (0, "admin x@y.example (id 1) ready\n")
    sign_in(anon_client, "x@y.example", "a long enough secret")
    assert (me(anon_client)["name"], me(anon_client)["role"]) == ("x@y.example", "admin")
    assert [(e.actor, e.action, e.after) for e in audit_log(sessions)] == [
        (
            "system:cli",
            "user.create",
            {"email": "x@y.example", "name": "x", "role": "admin", "password": True},
        )
    ]


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        # an unknown scope is named
        (
            ["--scope", "bogus"],
            f"error: unknown scope 'bogus': expected one of {ALL_SCOPES}\n",
        ),
        # a bad expiry is named
        (
            ["--scope", "read", "--expires", "soon"],
            "error: expiry 'soon' is not a duration like 12h, 30d or 8w (or 'never')\n",
        ),
        # a user who does not exist
        (["--scope", "read", "--user", "ghost@example.com"], "error: no user 'ghost@example.com'\n"),
    ],
)
def test_cli_refuses_bad_tokens_with_exit_1(
    cli: CliRunner, sessions: sessionmaker[Session], args: list[str], stderr: str
) -> None:
    result = cli.invoke(cli_app, ["tokens", "create", "--name", "ci", *args])

    assert (result.exit_code, result.stdout, result.stderr) == (1, "", stderr)
    with sessions() as session:
        assert session.scalars(select(ApiToken)).all() == []
    assert audit_log(sessions) == []


def test_cli_errors_as_json(cli: CliRunner) -> None:
    result = cli.invoke(cli_app, ["tokens", "create", "--name", "ci", "--scope", "bogus", "--json"])

    assert result.exit_code == 1
    assert json.loads(result.stderr) == {
        "error": {
            "code": "access.bad_scope",
            "message": f"unknown scope 'bogus': expected one of {ALL_SCOPES}",
            "details": [{"field": "scopes", "message": "unknown scope 'bogus'"}],
        }
    }
