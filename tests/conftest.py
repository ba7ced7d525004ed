"""Shared fixtures: a fresh, migrated database per test on SQLite and on a real PostgreSQL.

PostgreSQL is started by this harness (tests/pg_cluster.py: initdb + pg_ctl in a temporary folder) unless
QD_TEST_POSTGRES_URL names a server to use. Each test gets its own database, copied from a
template migrated once, so assertions can be exact. `fresh_database` is the one way a database is made:
per test (`db_url`), per module (the shared apps of tests/access/helpers.py) or per served app (the e2e
`live_app`). Helpers shared by test packages are in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, transaction
from quarterdeck.migrations import upgrade
from quarterdeck.runtime import Runtime, running
from tests.pg_cluster import postgres_cluster

ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPUS = ROOT.parent / "shared" / "corpus" / "catalog" / "public"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL without a database name."""
    external = os.environ.get("QD_TEST_POSTGRES_URL")
    if external:
        yield external.rstrip("/")
        return
    with postgres_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A migrated database to copy for each test."""
    name = "qd_template_" + uuid.uuid4().hex[:8]
    with psycopg.connect(postgres_server + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql+psycopg://{postgres_server.split('://', 1)[1]}/{name}")
    upgrade(engine)
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@contextmanager
def fresh_database(request: pytest.FixtureRequest, dialect: str, folder: Path) -> Iterator[str]:
    """A migrated database of its own, copied from the session's template for `dialect` ("sqlite",
    a file in `folder`, or "postgresql", dropped at the end): for a test, a module or a live server."""
    if dialect == "sqlite":
        path = folder / "quarterdeck.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: str = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    name = "qd_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"postgresql+psycopg://{server.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test, on each dialect in turn."""
    with fresh_database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, git_cache_dir=tmp_path / "git", embedded_worker=False)


@pytest.fixture
def runtime(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    """What one process of the install runs on; the test's sessions and app share it, as one
    process's commands and pages do (a second app built from `settings` is another replica)."""
    with running(settings, clock=clock) as built:
        yield built


@pytest.fixture
def sessions(runtime: Runtime) -> sessionmaker[Session]:
    return runtime.sessions


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


TEST_ACTOR = Actor.system("tests")
ADMIN_EMAIL = "admin@tests.example"


def make_user(
    sessions: sessionmaker[Session],
    clock: FrozenClock,
    email: str,
    *,
    role: GlobalRole = GlobalRole.MEMBER,
    password: str | None = None,
    teams: dict[str, str] | None = None,
) -> int:
    """A user (with team roles) made the way an admin would; returns its id."""
    from quarterdeck.access.schemas import TeamRoleName

    with transaction(sessions) as session:
        user = access.create_user(
            session, TEST_ACTOR, email=email, role=role, password=password, at=clock.now()
        )
        for team, team_role in (teams or {}).items():
            access.set_team_role(session, TEST_ACTOR, user.id, team, TeamRoleName(team_role), at=clock.now())
        return user.id


def make_token(
    sessions: sessionmaker[Session],
    clock: FrozenClock,
    *,
    user: str | None,
    scopes: list[str],
    team: str | None = None,
    name: str | None = None,
) -> str:
    """A personal token of `user`, or a service token (for `team`, or every team) when `user` is None;
    named `name` (deploys record `token:<name>` as who reported them), else a random test name."""
    with transaction(sessions) as session:
        created = access.create_token(
            session,
            TEST_ACTOR,
            name=name or f"test-{uuid.uuid4().hex[:6]}",
            scopes=scopes,
            user=user,
            service=user is None,
            team=team,
            at=clock.now(),
        )
        return created.token


def session_client(
    app: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock, email: str
) -> TestClient:
    """A client signed in as `email` with a real browser session, its CSRF token sent as a header.

    The session is started directly (no password round trip), so tests stay fast; the sign-in form
    itself is tested in tests/access/test_sign_in.py.
    """
    from quarterdeck.access.deps import SESSION_COOKIE

    with transaction(sessions) as session:
        user = access.find_user(session, email)
        raw, web = access.start_session(
            session, user, ip="testclient", user_agent="tests", at=clock.now(), hours=8
        )
    client = TestClient(app)
    client.cookies.set(SESSION_COOKIE, raw)
    client.headers["X-CSRF-Token"] = web.csrf_token
    return client


@pytest.fixture
def admin_token(sessions: sessionmaker[Session], clock: FrozenClock) -> str:
    make_user(sessions, clock, ADMIN_EMAIL, role=GlobalRole.ADMIN)
    return make_token(sessions, clock, user=ADMIN_EMAIL, scopes=["admin"])


@pytest.fixture
def app_under_test(runtime: Runtime) -> FastAPI:
    return create_app(runtime=runtime)


@pytest.fixture
def client(app_under_test: FastAPI, admin_token: str) -> Iterator[TestClient]:
    """A client signed in as an admin, with an API token."""
    with TestClient(app_under_test, headers={"Authorization": f"Bearer {admin_token}"}) as test_client:
        yield test_client


@pytest.fixture
def anon_client(app_under_test: FastAPI) -> Iterator[TestClient]:
    """A client with no credentials, like a browser before signing in."""
    with TestClient(app_under_test) as test_client:
        yield test_client
