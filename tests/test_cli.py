"""The `quarterdeck` command as a whole: where its database is by default, what every command says on a
database that is missing or was never migrated, and that what it prints is printed as text (Rich markup
never eats `[...]` out of a message or a name). Run in-process with Typer's CliRunner.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

from quarterdeck.cli import app as cli
from quarterdeck.config import Settings, default_database_url
from quarterdeck.jobs.runner import Worker
from tests.conftest import ROOT

Run = Callable[..., Result]
"""`run("services", "--json")`: the CLI's result."""

CATALOG = """\
apiVersion: quarterdeck/v1
kind: Team
slug: shop
name: Shop
---
apiVersion: quarterdeck/v1
kind: Service
slug: checkout
title: Checkout [beta]
owner: shop
"""
BAD_BACKSTAGE = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: "[a-z0-9]x"
spec:
  type: service
  owner: shop
  lifecycle: production
"""


def runner(env: dict[str, str | None]) -> Run:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", **env})

    return invoke


@pytest.fixture
def run(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`quarterdeck ARGS...` against the test's database, from a folder without a quarterdeck.toml."""
    monkeypatch.chdir(tmp_path)
    return runner({"QD_DATABASE_URL": settings.database_url, "QD_GIT_CACHE_DIR": str(settings.git_cache_dir)})


# ---------------------------------------------------------------- the default database


def test_the_default_database_is_in_the_users_data_folder_whatever_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("XDG_DATA_HOME", "QD_DATABASE_URL", "QD_GIT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "home" / ".local" / "share" / "quarterdeck"

    assert (Settings().database_url, Settings().git_cache_dir) == (
        f"sqlite:///{data}/quarterdeck.db",
        data / "git",
    )
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().database_url == f"sqlite:///{tmp_path}/xdg/quarterdeck/quarterdeck.db"
    # the XDG spec says a relative XDG_DATA_HOME is to be ignored
    monkeypatch.setenv("XDG_DATA_HOME", "xdg")
    assert Settings().database_url == f"sqlite:///{data}/quarterdeck.db"
    monkeypatch.setenv("QD_DATABASE_URL", "sqlite:////srv/quarterdeck.db")
    assert Settings().database_url == "sqlite:////srv/quarterdeck.db"


def test_commands_run_from_any_folder_share_the_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = runner({"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": None, "QD_DATABASE_URL": None})
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()

    monkeypatch.chdir(tmp_path / "one")
    upgraded = run("db", "upgrade")
    monkeypatch.chdir(tmp_path / "two")
    listed = run("services", "--json")

    assert upgraded.exit_code == 0, upgraded.output
    assert (listed.exit_code, json.loads(listed.stdout)["total"]) == (0, 0)
    assert (tmp_path / "home" / ".local" / "share" / "quarterdeck" / "quarterdeck.db").is_file()
    assert list((tmp_path / "one").iterdir()) == list((tmp_path / "two").iterdir()) == []


def test_help_names_the_default_database() -> None:
    shown = runner({"COLUMNS": "300"})("--help")

    assert shown.exit_code == 0, shown.output
    assert f"by default {default_database_url()}, whichever folder you run from" in shown.stdout


# ---------------------------------------------------------------- a database without tables

EXAMPLES = ROOT / "examples"
COMMANDS: dict[str, tuple[str, ...]] = {
    "serve": ("--no-migrate",),
    "import": (str(EXAMPLES),),
    "whois": ("checkout",),
    "services": (),
    "worker": (),
    "catalog rebuild": (),
    "catalog check": (),
    "users create-admin": ("--email", "admin@example.com", "--password", "correct horse battery"),
    "users list": (),
    "tokens create": ("--name", "ci", "--scope", "read"),
    "tokens list": (),
    "tokens revoke": ("1",),
    "audit verify": (),
    "audit export": (),
    "jobs list": (),
    "jobs retry": ("1",),
    "jobs cancel": ("1",),
    "deploys report": ("--service", "checkout", "--environment", "staging", "--version", "1.0.0"),
    "deploys list": (),
    "deploys live": ("checkout",),
    "environments list": (),
    "environments apply": (str(EXAMPLES / "environments.yaml"),),
    "pipelines apply": (str(ROOT / "tests" / "fixtures" / "pipelines" / "careful.yaml"), "--team", "shop"),
    "pipelines show": ("checkout", "--env", "production"),
    "pipelines list": (),
    "deploy": ("checkout", "1.1.0", "--env", "staging"),
    "environments freeze": (
        "production",
        "--from",
        "2026-12-24T00:00:00+00:00",
        "--until",
        "2026-12-27T00:00:00+00:00",
        "--reason",
        "holidays",
    ),
}
"""Every command but `db upgrade` (which makes the tables), with arguments it would run with."""


def command_paths(command: object, prefix: str = "") -> set[str]:
    """The full names of every command under `command` ("deploys report", ...)."""
    if isinstance(command, TyperGroup):
        return {
            path for name, sub in command.commands.items() for path in command_paths(sub, f"{prefix}{name} ")
        }
    return {prefix.strip()}


@pytest.fixture(params=["sqlite-missing", "sqlite-empty", "postgresql-empty"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL, what is wrong with it) of a database that is not there, or has no tables."""
    if request.param.startswith("sqlite"):
        path = tmp_path / "data" / "quarterdeck.db"
        if request.param == "sqlite-empty":
            path.parent.mkdir()
            sqlite3.connect(path).close()
        state = "does not exist yet" if request.param == "sqlite-missing" else "has no tables yet"
        yield f"sqlite:///{path}", f"the database at {path} {state}"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = "qd_empty_" + uuid.uuid4().hex[:8]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{server.split('://', 1)[1]}/{name}"
    try:
        yield url, f"the database at {url} has no tables yet"
    finally:
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_every_command_on_a_database_without_tables_says_what_to_run(
    unmigrated: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, wrong = unmigrated
    # Neither serves nor works should the check let them through: the test would wait forever.
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("served"))
    monkeypatch.setattr(Worker, "run", lambda self: pytest.fail("worked"))
    monkeypatch.chdir(tmp_path)
    run = runner({"QD_DATABASE_URL": url, "QD_GIT_CACHE_DIR": str(tmp_path / "git")})
    says = f"error: {wrong}: run `quarterdeck db upgrade`, or point QD_DATABASE_URL at your database\n"

    answers = {command: run(*command.split(), *args) for command, args in COMMANDS.items()}

    assert set(COMMANDS) | {"db upgrade"} == command_paths(typer.main.get_command(cli))
    assert {command: (r.exit_code, r.stdout, r.stderr) for command, r in answers.items()} == {
        command: (1, "", says) for command in COMMANDS
    }
    if url.startswith("sqlite"):  # nothing was created on the way
        assert (tmp_path / "data" / "quarterdeck.db").exists() == ("has no tables" in wrong)
    as_json = run("whois", "checkout", "--json")
    assert (as_json.exit_code, json.loads(as_json.stderr)["error"]["code"]) == (1, "database.not_migrated")
    # what it says to run is what mends it
    assert run("db", "upgrade").exit_code == 0
    assert run("services", "--json").exit_code == 0


def test_a_database_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/not-a-database.db"
    (tmp_path / "not-a-database.db").write_text("this is not SQLite", encoding="utf-8")

    result = runner({"QD_DATABASE_URL": url})("services")

    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: cannot open the database at {tmp_path}/not-a-database.db: file is not a database\n"
    )


# ---------------------------------------------------------------- text, never markup


@pytest.fixture
def imported(run: Run, tmp_path: Path) -> Result:
    """`quarterdeck import` of a folder with a good quarterdeck.yaml and a Backstage file with a bad name."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "quarterdeck.yaml").write_text(CATALOG, encoding="utf-8")
    (source / "catalog-info.yaml").write_text(BAD_BACKSTAGE, encoding="utf-8")
    return run("import", str(source))


def test_messages_and_names_print_as_they_are(run: Run, imported: Result) -> None:
    created = run("tokens", "create", "--name", "deploys [eu]", "--scope", "read")
    tokens = run("tokens", "list")
    whois = run("whois", "checkout")

    assert imported.exit_code == 1, imported.output
    assert imported.stdout.splitlines() == [
        "2 files, 2 entities: 2 created, 0 updated, 0 unchanged, 0 removed",
        "error catalog-info.yaml:4: metadata.name '[a-z0-9]x' is not valid: "
        "use letters, digits and '-', '_' or '.' between them",
    ]
    assert created.exit_code == 0, created.output
    assert " deploys [eu] " in tokens.stdout
    assert whois.stdout.splitlines()[0] == "Checkout [beta] (service)  /services/checkout"


def test_whois_on_the_command_line_suggests_the_nearest_names(run: Run, imported: Result) -> None:
    result = run("whois", "checkout-apo")

    assert (result.exit_code, result.stdout) == (1, "")
    assert (
        result.stderr == "error: nothing in the catalog is called 'checkout-apo'; did you mean 'checkout'?\n"
    )
