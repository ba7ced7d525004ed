"""The audit log: what catalog, token and user changes write, the hash chain and its tamper evidence, the
triggers, search, export and the CLI. Runs on SQLite and PostgreSQL; the concurrency test on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, exc, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from quarterdeck.access import audit
from quarterdeck.access import service as access
from quarterdeck.access.audit import Verification
from quarterdeck.access.models import AuditEntry
from quarterdeck.access.schemas import Actor, AuditEntryOut, GlobalRole
from quarterdeck.cli import app as cli_app
from quarterdeck.clock import FrozenClock
from quarterdeck.db import dialect_name, transaction
from tests.access.helpers import PASSWORD, SharedApp, cheap_passwords, me, shared_app, sign_in
from tests.conftest import NOW, TEST_ACTOR, make_token, make_user
from tests.helpers import Json, audit_log, bearer, create_service, create_team, error_of

MEMBER = "max@example.com"


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_passwords(monkeypatch)


def new_entries(sessions: sessionmaker[Session], since: list[AuditEntryOut]) -> list[AuditEntryOut]:
    entries = audit_log(sessions)
    assert entries[: len(since)] == since
    return entries[len(since) :]


def summary(entry: AuditEntryOut) -> tuple[str, str, str, str, str, Any, Any, str | None]:
    return (
        entry.actor,
        entry.actor_kind,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.before,
        entry.after,
        entry.ip,
    )


# ---------------------------------------------------------------- catalog changes write one entry each

TEAM: Json = {
    "annotations": {},
    "chat": None,
    "description": "",
    "email": None,
    "links": [],
    "name": "Payments",
    "parent": None,
    "slug": "payments",
}
SERVICE: Json = {
    "annotations": {},
    "contacts": [],
    "custom": {},
    "depends_on": [],
    "description": "",
    "image": None,
    "lifecycle": "production",
    "links": [],
    "owner": "payments",
    "slug": "payments-api",
    "system": None,
    "tags": [],
    "tier": None,
    "title": "payments-api",
    "type": "service",
}
REPLACED = {**SERVICE, "title": "Payments API", "tier": 1, "description": "Takes card payments."}
PATCHED = {**REPLACED, "lifecycle": "deprecated", "tags": ["pci"]}
PUT_BODY = {"slug": "payments-api", "owner": "payments", "title": "Payments API", "tier": 1}

# (method, path, body, status, action, target, before, after), applied in order
MUTATIONS: list[tuple[str, str, Json | None, int, str, tuple[str, str], Any, Any]] = [
    # creating a team: every field after, nothing before
    (
        "POST",
        "/api/v1/teams",
        {"slug": "payments", "name": "Payments"},
        201,
        "team.create",
        ("team", "payments"),
        None,
        TEAM,
    ),
    # patching a team: only the changed field
    (
        "PATCH",
        "/api/v1/teams/payments",
        {"email": "pay@example.com"},
        200,
        "team.update",
        ("team", "payments"),
        {"email": None},
        {"email": "pay@example.com"},
    ),
    # replacing a team: only what differs from before (the e-mail is sent again, unchanged)
    (
        "PUT",
        "/api/v1/teams/payments",
        {"slug": "payments", "name": "Payments Team", "email": "pay@example.com"},
        200,
        "team.update",
        ("team", "payments"),
        {"name": "Payments"},
        {"name": "Payments Team"},
    ),
    # creating a service
    (
        "POST",
        "/api/v1/services",
        {"slug": "payments-api", "owner": "payments"},
        201,
        "service.create",
        ("service", "payments-api"),
        None,
        SERVICE,
    ),
    # replacing a service: the three fields that changed, in key order
    (
        "PUT",
        "/api/v1/services/payments-api",
        {**PUT_BODY, "description": "Takes card payments."},
        200,
        "service.update",
        ("service", "payments-api"),
        {"description": "", "tier": None, "title": "payments-api"},
        {"description": "Takes card payments.", "tier": 1, "title": "Payments API"},
    ),
    # patching a service: two fields
    (
        "PATCH",
        "/api/v1/services/payments-api",
        {"lifecycle": "deprecated", "tags": ["pci"]},
        200,
        "service.update",
        ("service", "payments-api"),
        {"lifecycle": "production", "tags": []},
        {"lifecycle": "deprecated", "tags": ["pci"]},
    ),
    # a patch that changes nothing is still a recorded edit, with nothing in it
    (
        "PATCH",
        "/api/v1/services/payments-api",
        {"tier": 1},
        200,
        "service.update",
        ("service", "payments-api"),
        {},
        {},
    ),
    # deleting a service: every field before, nothing after
    (
        "DELETE",
        "/api/v1/services/payments-api",
        None,
        204,
        "service.delete",
        ("service", "payments-api"),
        PATCHED,
        None,
    ),
    # deleting a team
    (
        "DELETE",
        "/api/v1/teams/payments",
        None,
        204,
        "team.delete",
        ("team", "payments"),
        {**TEAM, "name": "Payments Team", "email": "pay@example.com"},
        None,
    ),
]


def test_each_catalog_change_writes_one_entry(client: TestClient, sessions: sessionmaker[Session]) -> None:
    label = me(client)["name"]
    assert label.startswith("token:test-")

    for method, path, body, status, action, target, before, after in MUTATIONS:
        earlier = audit_log(sessions)

        response = client.request(method, path, json=body)

        assert response.status_code == status, (method, path, response.text)
        [entry] = new_entries(sessions, earlier)
        assert summary(entry) == (label, "token", action, *target, before, after, "testclient"), (
            method,
            path,
        )
        assert (entry.at, entry.note) == (NOW, None)


def test_a_session_users_change_names_the_user(
    anon_client: TestClient, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, MEMBER, password=PASSWORD, teams={"payments": "owner"})
    create_team(client, "payments")
    csrf = sign_in(anon_client, MEMBER)
    earlier = audit_log(sessions)

    response = anon_client.patch(
        "/api/v1/teams/payments", json={"chat": "#pay"}, headers={"X-CSRF-Token": csrf}
    )

    assert response.status_code == 200, response.text
    [entry] = new_entries(sessions, earlier)
    assert summary(entry) == (
        MEMBER,
        "user",
        "team.update",
        "team",
        "payments",
        {"chat": None},
        {"chat": "#pay"},
        "testclient",
    )


# ---------------------------------------------------------------- refused changes write nothing


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SharedApp, dict[str, dict[str, str]]]]:
    """payments-api (team payments), search-api (team search), and tokens of a member of payments.

    Shared by the refusal rows below: a refused change leaves the state as it was, so each row starts
    from the same state (and a row that wrongly changed something fails itself)."""
    with shared_app(request, tmp_path_factory.mktemp("guarded")) as shared:
        create_team(shared.client, "payments")
        create_team(shared.client, "search")
        create_service(shared.client, "payments-api", "payments", tier=2)
        create_service(shared.client, "search-api", "search")
        make_user(shared.sessions, shared.clock, MEMBER, teams={"payments": "member"})
        tokens = {
            "read": bearer(make_token(shared.sessions, shared.clock, user=MEMBER, scopes=["read"])),
            "write": bearer(make_token(shared.sessions, shared.clock, user=MEMBER, scopes=["write:catalog"])),
            "admin": {},
        }
        yield shared, tokens


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "headers", "status", "code"),
    [
        # a read-only token
        ("read", "PATCH", "/api/v1/services/payments-api", {"tier": 1}, {}, 403, "access.forbidden"),
        # ... deleting
        ("read", "DELETE", "/api/v1/services/payments-api", None, {}, 403, "access.forbidden"),
        # another team's service
        ("write", "PATCH", "/api/v1/services/search-api", {"tier": 1}, {}, 403, "access.forbidden"),
        # handing one's own service to another team
        ("write", "PATCH", "/api/v1/services/payments-api", {"owner": "search"}, {}, 403, "access.forbidden"),
        # creating a service for another team
        ("write", "POST", "/api/v1/services", {"slug": "x", "owner": "search"}, {}, 403, "access.forbidden"),
        # a team's entry is for its owners
        ("write", "PATCH", "/api/v1/teams/payments", {"chat": "#x"}, {}, 403, "access.forbidden"),
        # an invalid field
        (
            "admin",
            "PUT",
            "/api/v1/services/payments-api",
            {"slug": "payments-api", "owner": "payments", "tier": 9},
            {},
            422,
            "request.invalid",
        ),
        # an invalid patch
        ("admin", "PATCH", "/api/v1/services/payments-api", {"tier": "high"}, {}, 422, "request.invalid"),
        # renaming
        (
            "admin",
            "PATCH",
            "/api/v1/services/payments-api",
            {"slug": "renamed"},
            {},
            422,
            "catalog.slug_immutable",
        ),
        # a stale ETag
        (
            "admin",
            "PATCH",
            "/api/v1/services/payments-api",
            {"tier": 1},
            {"If-Match": '"stale"'},
            412,
            "catalog.stale_etag",
        ),
        # ... on delete too
        (
            "admin",
            "DELETE",
            "/api/v1/services/payments-api",
            None,
            {"If-Match": '"stale"'},
            412,
            "catalog.stale_etag",
        ),
        # a duplicate
        (
            "admin",
            "POST",
            "/api/v1/teams",
            {"slug": "payments", "name": "Again"},
            {},
            409,
            "catalog.duplicate",
        ),
    ],
)
def test_a_refused_change_writes_nothing_and_changes_nothing(
    guarded: tuple[SharedApp, dict[str, dict[str, str]]],
    who: str,
    method: str,
    path: str,
    body: Json | None,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    shared, member_tokens = guarded
    client, sessions = shared.client, shared.sessions
    earlier = audit_log(sessions)
    services = [client.get(f"/api/v1/services/{s}").json() for s in ("payments-api", "search-api")]
    team = client.get("/api/v1/teams/payments").json()

    response = client.request(method, path, json=body, headers={**headers, **member_tokens[who]})

    error_of(response, status, code)
    assert audit_log(sessions) == earlier
    assert [client.get(f"/api/v1/services/{s}").json() for s in ("payments-api", "search-api")] == services
    assert client.get("/api/v1/teams/payments").json() == team
    assert client.get("/api/v1/services").json()["total"] == 2


# ---------------------------------------------------------------- users and tokens


def test_user_and_token_changes_are_audited_without_secrets(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    label = me(client)["name"]
    earlier = audit_log(sessions)
    second_password = "another long secret"

    steps = [
        client.post("/api/v1/users", json={"email": " Max@Example.com", "password": PASSWORD}),
        client.patch(f"/api/v1/users/{MEMBER}", json={"role": "viewer"}),
        client.patch(f"/api/v1/users/{MEMBER}", json={"password": second_password}),
        client.put(f"/api/v1/users/{MEMBER}/teams/payments", json={"role": "owner"}),
        client.delete(f"/api/v1/users/{MEMBER}/teams/payments"),
        client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"], "user": MEMBER}),
    ]
    token = steps[-1].json()
    steps.append(client.delete(f"/api/v1/tokens/{token['id']}"))

    assert [s.status_code for s in steps] == [201, 200, 200, 200, 200, 201, 200]
    entries = new_entries(sessions, earlier)
    tid = str(token["id"])
    assert [(e.actor, e.action, e.target_type, e.target_id, e.before, e.after, e.note) for e in entries] == [
        (
            label,
            "user.create",
            "user",
            MEMBER,
            None,
            {"email": MEMBER, "name": "max", "role": "member", "password": True},
            None,
        ),
        (
            label,
            "user.change",
            "user",
            MEMBER,
            {"role": "member", "active": True},
            {"role": "viewer", "active": True},
            None,
        ),
        (
            label,
            "user.change",
            "user",
            MEMBER,
            {"role": "viewer", "active": True},
            {"role": "viewer", "active": True, "password": "changed"},
            None,
        ),
        (
            label,
            "user.team_role",
            "user",
            MEMBER,
            {"team": "payments", "role": None},
            {"team": "payments", "role": "owner"},
            None,
        ),
        (
            label,
            "user.team_role",
            "user",
            MEMBER,
            {"team": "payments", "role": "owner"},
            {"team": "payments", "role": None},
            None,
        ),
        (
            label,
            "token.create",
            "token",
            tid,
            None,
            {
                "name": "ci",
                "scopes": ["read"],
                "user": MEMBER,
                "team": None,
                "expires_at": "2027-02-23 12:00:00+00:00",
            },
            None,
        ),
        (label, "token.revoke", "token", tid, None, None, "ci"),
    ]
    everything = json.dumps([e.model_dump(mode="json") for e in audit_log(sessions)])
    for secret in (PASSWORD, second_password, token["token"], token["token"][10:]):
        assert secret not in everything


# ---------------------------------------------------------------- the chain


def seed(sessions: sessionmaker[Session], count: int, *, start: int = 0) -> None:
    """`count` entries straight through access.record, one transaction each, a minute apart."""
    for n in range(start, start + count):
        with transaction(sessions) as session:
            access.record(
                session,
                TEST_ACTOR,
                "service.update",
                target=("service", f"svc-{n}"),
                at=NOW + timedelta(minutes=n),
                before={"tier": n},
                after={"tier": n + 1, "note": "ünïcode ✓", "ratio": 0.1 * n},
                note=f"change {n}",
            )


def verification(sessions: sessionmaker[Session]) -> Verification:
    with sessions() as session:
        return access.verify(session)


def test_a_fresh_chain_verifies(sessions: sessionmaker[Session]) -> None:
    assert verification(sessions) == Verification(True, 0, None, None)


@pytest.mark.parametrize(
    "batch",
    [
        # the real batch size: everything in one go
        audit.VERIFY_BATCH,
        # small batches, so the walk crosses batch boundaries (27 = 3 x 7 + 6)
        7,
    ],
)
def test_a_long_chain_verifies(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(audit, "VERIFY_BATCH", batch)
    seed(sessions, 27)

    assert verification(sessions) == Verification(True, 27, None, None)
    assert [e.seq for e in audit_log(sessions)] == list(range(1, 28))


def test_an_entry_rolls_back_with_its_change(sessions: sessionmaker[Session]) -> None:
    seed(sessions, 2)
    with sessions() as session:
        access.record(session, TEST_ACTOR, "service.update", target=("service", "gone"), at=NOW)
        session.rollback()
    seed(sessions, 1, start=2)

    assert [e.target_id for e in audit_log(sessions)] == ["svc-0", "svc-1", "svc-2"]
    assert verification(sessions) == Verification(True, 3, None, None)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sealed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    """Five entries (the admin's two and three more) that each statement below tries to change."""
    with shared_app(request, tmp_path_factory.mktemp("sealed")) as shared:
        seed(shared.sessions, 3)
        yield shared


REFUSED_ERROR = {
    "sqlite": (exc.IntegrityError, "IntegrityError"),
    "postgresql": (exc.ProgrammingError, "RaiseException"),
}
"""What each database raises (SQLAlchemy's class, the driver's) when the append-only trigger refuses."""


@pytest.mark.parametrize(
    ("statement", "dialects"),
    [
        # rewriting one entry
        ("UPDATE audit_log SET after = NULL WHERE seq = 2", {"sqlite", "postgresql"}),
        # rewriting every actor
        ("UPDATE audit_log SET actor = 'mallory'", {"sqlite", "postgresql"}),
        # even an update that changes nothing
        ("UPDATE audit_log SET hash = hash WHERE seq = 1", {"sqlite", "postgresql"}),
        # removing the newest entry
        ("DELETE FROM audit_log WHERE seq = 3", {"sqlite", "postgresql"}),
        # removing everything (SQLite's truncate optimisation must not skip the trigger)
        ("DELETE FROM audit_log", {"sqlite", "postgresql"}),
        # TRUNCATE, which PostgreSQL has and which skips row triggers
        ("TRUNCATE audit_log", {"postgresql"}),
    ],
)
def test_the_triggers_refuse_updates_and_deletes(
    sealed: SharedApp, statement: str, dialects: set[str]
) -> None:
    sessions = sealed.sessions
    before = audit_log(sessions)

    with sessions() as session:
        dialect = dialect_name(session)
        if dialect not in dialects:
            pytest.skip(f"{dialect} has no {statement.split()[0]}")
        with pytest.raises(exc.DBAPIError) as raised:
            session.execute(text(statement))
        session.rollback()

    assert (type(raised.value), type(raised.value.orig).__name__) == REFUSED_ERROR[dialect]
    assert "the audit log is append-only" in str(raised.value.orig)
    assert audit_log(sessions) == before
    assert verification(sessions) == Verification(True, 5, None, None)


def drop_guard(session: Session) -> None:
    """What an attacker with DDL rights does first: switch the append-only triggers off."""
    if dialect_name(session) == "postgresql":
        session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"))
    else:
        session.execute(text("DROP TRIGGER audit_log_no_update"))
        session.execute(text("DROP TRIGGER audit_log_no_delete"))


def edit(seq: int, **values: Any) -> Callable[[Session], None]:
    def run(session: Session) -> None:
        session.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(**values))

    return run


def remove(seq: int) -> Callable[[Session], None]:
    def run(session: Session) -> None:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == seq))

    return run


def edit_and_rehash(seq: int) -> Callable[[Session], None]:
    """Change an entry and give it the right hash for its new content (but the next entry still points
    at the old hash)."""

    def run(session: Session) -> None:
        entry = session.get_one(AuditEntry, seq)
        session.expunge(entry)
        entry.after = {"tier": 1}
        rehashed = audit.entry_hash(entry.prev_hash, audit._hashed_fields(entry))
        session.execute(
            update(AuditEntry).where(AuditEntry.seq == seq).values(after={"tier": 1}, hash=rehashed)
        )

    return run


@pytest.mark.parametrize(
    ("tamper", "checked", "first_bad", "problem"),
    [
        # an edited `after`
        (edit(3, after={"tier": 1}), 2, 3, "entry 3 was changed after it was written"),
        # the actor of the first entry
        (edit(1, actor="mallory@example.com"), 0, 1, "entry 1 was changed after it was written"),
        # the time of an entry
        (edit(4, at=NOW - timedelta(days=1)), 3, 4, "entry 4 was changed after it was written"),
        # the note of the newest entry
        (edit(5, note=None), 4, 5, "entry 5 was changed after it was written"),
        # an edited entry with a recomputed hash breaks the link to the next one
        (edit_and_rehash(3), 3, 4, "entry 4 does not follow the one before"),
        # a deleted entry in the middle
        (remove(2), 1, 2, "entry 2 is missing"),
        # the newest entry cut off: audit_head still remembers it
        (remove(5), 4, 5, "the log ends at entry 4 but 5 were written"),
    ],
)
def test_verify_finds_the_first_tampered_entry(
    sessions: sessionmaker[Session],
    tamper: Callable[[Session], None],
    checked: int,
    first_bad: int,
    problem: str,
) -> None:
    seed(sessions, 5)

    with transaction(sessions) as session:
        drop_guard(session)
        tamper(session)

    assert verification(sessions) == Verification(False, checked, first_bad, problem)


def test_tampering_is_found_across_verify_batches(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "VERIFY_BATCH", 4)
    seed(sessions, 12)

    with transaction(sessions) as session:
        drop_guard(session)
        edit(10, after={"tier": 99})(session)

    assert verification(sessions) == Verification(False, 9, 10, "entry 10 was changed after it was written")


def test_concurrent_appends_keep_one_chain(sessions: sessionmaker[Session], db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip(
            "SQLite lets one writer at a time into the whole file, so two appends cannot interleave; "
            "the audit_head row lock this checks is PostgreSQL's"
        )
    per_thread = 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def append(worker: int) -> None:
        try:
            for n in range(per_thread):
                barrier.wait(timeout=10)
                with transaction(sessions) as session:
                    access.record(
                        session,
                        Actor(kind="user", name=f"worker-{worker}", role=GlobalRole.MEMBER),
                        "service.update",
                        target=("service", f"w{worker}-{n}"),
                        at=NOW,
                    )
        except BaseException as failure:  # reported below, in the test's thread
            errors.append(failure)
            barrier.abort()

    threads = [threading.Thread(target=append, args=(w,)) for w in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [thread.is_alive() for thread in threads] == [False, False]
    assert errors == []
    entries = audit_log(sessions)
    assert [e.seq for e in entries] == list(range(1, 2 * per_thread + 1))
    assert sorted(e.target_id for e in entries) == sorted(
        f"w{w}-{n}" for w in (1, 2) for n in range(per_thread)
    )
    assert verification(sessions) == Verification(True, 2 * per_thread, None, None)


# ---------------------------------------------------------------- CLI and export


@pytest.fixture
def cli(db_url: str) -> CliRunner:
    return CliRunner(env={"QD_DATABASE_URL": db_url})


def test_cli_verify_passes_an_intact_log_and_names_the_tampered_entry(
    cli: CliRunner, sessions: sessionmaker[Session]
) -> None:
    seed(sessions, 5)
    intact = cli.invoke(cli_app, ["audit", "verify"])
    with transaction(sessions) as session:
        drop_guard(session)
        edit(3, after={"tier": 1})(session)

    tampered = cli.invoke(cli_app, ["audit", "verify"])
    as_json = cli.invoke(cli_app, ["audit", "verify", "--json"])

    assert (intact.exit_code, intact.stdout) == (0, "audit log intact: 5 entries\n")
    assert (tampered.exit_code, tampered.stdout, tampered.stderr) == (
        1,
        "",
        "audit log TAMPERED: entry 3 was changed after it was written (first bad entry 3)\n",
    )
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {
        "ok": False,
        "checked": 2,
        "first_bad_seq": 3,
        "problem": "entry 3 was changed after it was written",
    }


def test_api_verify_reports_the_same(client: TestClient, sessions: sessionmaker[Session]) -> None:
    seed(sessions, 3)  # after the admin fixture's two
    intact = client.get("/api/v1/audit/verify").json()
    with transaction(sessions) as session:
        drop_guard(session)
        remove(5)(session)

    response = client.get("/api/v1/audit/verify")

    assert intact == {"ok": True, "checked": 5, "first_bad_seq": None, "problem": None}
    assert response.json() == {
        "ok": False,
        "checked": 4,
        "first_bad_seq": 5,
        "problem": "the log ends at entry 4 but 5 were written",
    }


def test_export_is_json_lines_oldest_first_from_cli_and_api(
    cli: CliRunner, client: TestClient, sessions: sessionmaker[Session]
) -> None:
    seed(sessions, 4)

    from_cli = cli.invoke(cli_app, ["audit", "export"])
    from_api = client.get("/api/v1/audit/export")
    only_updates = cli.invoke(cli_app, ["audit", "export", "--action", "service.update"])
    api_updates = client.get("/api/v1/audit/export", params={"action": "service.update"})

    assert from_cli.exit_code == 0, from_cli.output
    assert from_api.status_code == 200
    assert from_api.headers["content-type"] == "application/x-ndjson"
    assert from_api.headers["content-disposition"] == 'attachment; filename="quarterdeck-audit.jsonl"'
    assert from_api.text == from_cli.stdout
    lines = from_cli.stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert [AuditEntryOut.model_validate_json(line) for line in lines] == audit_log(sessions)
    assert [json.loads(line)["seq"] for line in only_updates.stdout.splitlines()] == [3, 4, 5, 6]
    assert api_updates.text == only_updates.stdout


# ---------------------------------------------------------------- search, filters and paging

ADA = Actor(kind="user", name="ada@example.com", role=GlobalRole.ADMIN, user_id=1, ip="192.0.2.1")
BOT = Actor(kind="token", name="deploy-bot", role=GlobalRole.MEMBER, token_id=9, ip="192.0.2.2")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def history(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApp]:
    """Entries 3 to 8 after the admin's two, a minute apart; only read by the tests using it."""
    rows: list[tuple[Actor, str, tuple[str, str], str | None]] = [
        (ADA, "service.create", ("service", "payments-api"), None),  # 3
        (BOT, "service.update", ("service", "payments-api"), "runbook link"),  # 4
        (ADA, "team.update", ("team", "payments"), None),  # 5
        (BOT, "service.update", ("service", "search-api"), None),  # 6
        (ADA, "service.delete", ("service", "search-api"), "retired"),  # 7
        (ADA, "user.change", ("user", "max@example.com"), None),  # 8
    ]
    with shared_app(request, tmp_path_factory.mktemp("history")) as shared:
        for minutes, (actor, action, target, note) in enumerate(rows, start=1):
            with transaction(shared.sessions) as session:
                at = NOW + timedelta(minutes=minutes)
                access.record(session, actor, action, target=target, at=at, note=note)
        yield shared


@pytest.mark.parametrize(
    ("params", "seqs", "total"),
    [
        # everything, newest first
        ({}, [8, 7, 6, 5, 4, 3, 2, 1], 8),
        # by actor, any part of the label, any case
        ({"actor": "ADA@"}, [8, 7, 5, 3], 4),
        # a token's label
        ({"actor": "token:deploy-bot"}, [6, 4], 2),
        # an exact action
        ({"action": "service.update"}, [6, 4], 2),
        # part of an action
        ({"action": "service."}, [7, 6, 4, 3], 4),
        # a target type
        ({"target_type": "team"}, [5], 1),
        # a target
        ({"target_type": "service", "target_id": "search-api"}, [7, 6], 2),
        # text in the note
        ({"q": "runbook"}, [4], 1),
        # text in the target
        ({"q": "search"}, [7, 6], 2),
        # a time window: since is inclusive, until is not
        ({"since": "2026-11-25T12:02:00Z", "until": "2026-11-25T12:05:00Z"}, [6, 5, 4], 3),
        # filters combine
        ({"actor": "ada", "action": "service", "since": "2026-11-25T12:02:00+00:00"}, [7], 1),
        # a page of three
        ({"per_page": "3", "page": "2"}, [5, 4, 3], 8),
        # past the end
        ({"per_page": "3", "page": "4"}, [], 8),
    ],
)
def test_search_filters_and_pages(
    history: SharedApp, params: dict[str, str], seqs: list[int], total: int
) -> None:
    response = history.client.get("/api/v1/audit", params=params)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["seq"] for item in body["items"]] == seqs
    assert (body["total"], body["page"], body["per_page"]) == (
        total,
        int(params.get("page", 1)),
        int(params.get("per_page", 50)),
    )


def test_search_items_carry_every_field(history: SharedApp) -> None:
    [item] = history.client.get("/api/v1/audit", params={"q": "runbook"}).json()["items"]

    assert item == {
        "seq": 4,
        "at": "2026-11-25T12:02:00Z",
        "actor": "token:deploy-bot",
        "actor_kind": "token",
        "action": "service.update",
        "target_type": "service",
        "target_id": "payments-api",
        "before": None,
        "after": None,
        "note": "runbook link",
        "ip": "192.0.2.2",
        "hash": item["hash"],
    }
    assert len(item["hash"]) == 64


@pytest.mark.parametrize(
    "path",
    [
        # the search
        "/api/v1/audit",
        # the export, which streams
        "/api/v1/audit/export",
    ],
)
def test_a_time_without_a_zone_is_refused(history: SharedApp, path: str) -> None:
    headers = dict(history.client.headers)
    with TestClient(history.app, raise_server_exceptions=False, headers=headers) as careful:
        response = careful.get(path, params={"since": "2026-11-25T12:00:00"})

    assert error_of(response, 422, "request.invalid")["details"][0]["field"] == "since"


def test_the_action_filter_ignores_case_like_the_other_text_filters(
    request: pytest.FixtureRequest, history: SharedApp
) -> None:
    response = history.client.get("/api/v1/audit", params={"action": "SERVICE.Update"})

    assert [item["seq"] for item in response.json()["items"]] == [6, 4]


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        # a member's token, even with every scope a member can have
        ("member-token", 403, "access.forbidden"),
        # a member's browser session
        ("member-session", 403, "access.forbidden"),
        # nobody
        ("anonymous", 401, "access.sign_in_required"),
    ],
)
def test_the_audit_log_is_for_admins(
    anon_client: TestClient,
    sessions: sessionmaker[Session],
    clock: FrozenClock,
    who: str,
    status: int,
    code: str,
) -> None:
    make_user(sessions, clock, MEMBER, password=PASSWORD, teams={"payments": "owner"})
    headers: dict[str, str] = {}
    if who == "member-token":
        scopes = ["read", "write:catalog", "deploy", "page", "flags"]
        headers = bearer(make_token(sessions, clock, user=MEMBER, scopes=scopes))
    elif who == "member-session":
        sign_in(anon_client, MEMBER)

    for path in ("/api/v1/audit", "/api/v1/audit/export", "/api/v1/audit/verify"):
        error_of(anon_client.get(path, headers=headers), status, code)
    page = anon_client.get("/admin/audit", headers=headers, follow_redirects=False)
    assert page.status_code == (303 if who == "anonymous" else 403)


# ---------------------------------------------------------------- injection attempts in every filter

PAYLOADS = ["' OR 1=1 --", "%", "_", "\\", '"; DROP TABLE audit_log; --']


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def odd_history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SharedApp, list[AuditEntryOut]]]:
    """Entries 3 to 6, whose fields hold each payload literally, so a literal match has something to find."""
    rows: list[tuple[Actor, str, tuple[str, str], str | None]] = [
        (
            Actor(kind="user", name="o'brien@example.com", role=GlobalRole.MEMBER),
            "service.update",
            ("service", "pay_ments"),
            "50% off",
        ),
        (
            Actor(kind="token", name="ci_bot", role=GlobalRole.MEMBER),
            "team.create",
            ("team", "' OR 1=1 --"),
            None,
        ),
        (
            Actor(kind="user", name="eve@example.com", role=GlobalRole.MEMBER),
            "service.delete",
            ("service", "back\\slash"),
            '"; DROP TABLE audit_log; --',
        ),
        (
            Actor(kind="user", name="bob@example.com", role=GlobalRole.MEMBER),
            "service.create",
            ("service", "plain"),
            "nothing special",
        ),
    ]
    with shared_app(request, tmp_path_factory.mktemp("odd")) as shared:
        for actor, action, target, note in rows:
            with transaction(shared.sessions) as session:
                access.record(session, actor, action, target=target, at=NOW, note=note)
        yield shared, audit_log(shared.sessions)


MATCHES: dict[str, Callable[[AuditEntryOut, str], bool]] = {
    "actor": lambda e, p: p.lower() in e.actor.lower(),
    "action": lambda e, p: e.action == p or p in e.action,
    "target_type": lambda e, p: e.target_type == p,
    "target_id": lambda e, p: e.target_id == p,
    "q": lambda e, p: any(p.lower() in (v or "").lower() for v in (e.target_id, e.note, e.action)),
}
"""What each filter means, literally: the oracle the database's answers are held to."""


@pytest.mark.parametrize(
    "payload",
    [
        # the classic tautology
        PAYLOADS[0],
        # LIKE's any-string wildcard
        PAYLOADS[1],
        # LIKE's any-character wildcard
        PAYLOADS[2],
        # the LIKE escape character itself
        PAYLOADS[3],
        # a stacked statement
        PAYLOADS[4],
    ],
)
def test_filters_match_payloads_literally(
    odd_history: tuple[SharedApp, list[AuditEntryOut]], payload: str
) -> None:
    shared, entries = odd_history
    client = shared.client
    for name, matches in MATCHES.items():
        response = client.get("/api/v1/audit", params={name: payload})

        assert response.status_code == 200, (name, response.text)
        expected = [e.seq for e in reversed(entries) if matches(e, payload)]
        assert [item["seq"] for item in response.json()["items"]] == expected, name
    page = client.get("/admin/audit", params={"q": payload, "actor": payload})
    assert page.status_code == 200
    error_of(client.get("/api/v1/audit", params={"since": payload}), 422, "request.invalid")
    with shared.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == len(entries)
    assert verification(shared.sessions) == Verification(True, len(entries), None, None)


def test_each_payload_is_found_where_it_was_written(
    odd_history: tuple[SharedApp, list[AuditEntryOut]],
) -> None:
    """The oracle above is not vacuous: every payload matches something through some filter."""
    client = odd_history[0].client
    found = {
        payload: sorted(
            {
                item["seq"]
                for name in MATCHES
                for item in client.get("/api/v1/audit", params={name: payload}).json()["items"]
            }
        )
        for payload in PAYLOADS
    }

    assert found == {
        "' OR 1=1 --": [4],
        "%": [3],
        "_": [3, 4, 5],  # 5's note names audit_log
        "\\": [5],
        '"; DROP TABLE audit_log; --': [5],
    }
