"""`quarterdeck deploys report|list|live` and `quarterdeck environments apply|list`, run in-process with
Typer's CliRunner against the test's database; `deploys report --api` against the portal served by
uvicorn. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from quarterdeck.app import create_app
from quarterdeck.catalog.importer import import_source
from quarterdeck.cli import app as cli
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.conftest import ROOT, make_token
from tests.deploys.helpers import count_rows
from tests.pg_cluster import free_port

EXAMPLES = ROOT / "examples"
SHOP = """\
apiVersion: quarterdeck/v1
kind: Team
slug: shop
name: Shop
---
apiVersion: quarterdeck/v1
kind: Service
slug: checkout
owner: shop
tier: 1
"""
Run = Callable[..., Result]
"""`run("deploys", "list", ...)`: the CLI's result."""


@pytest.fixture
def run(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`quarterdeck ARGS...` against the test's database, from a folder without a quarterdeck.toml."""
    monkeypatch.chdir(tmp_path)
    for name in ("QD_API_URL", "QD_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "QD_DATABASE_URL": settings.database_url,
        "QD_GIT_CACHE_DIR": str(settings.git_cache_dir),
        "COLUMNS": "200",  # rich tables wider than the 80 columns it assumes without a terminal
    }

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    return invoke


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def import_catalog(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, source: Path
) -> None:
    imported = import_source(sessions, str(source), settings=settings, clock=clock)
    assert imported.errors == []


@pytest.fixture
def shop_catalog(
    run: Run, sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """Team shop and its service checkout, and the example environments."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "quarterdeck.yaml").write_text(SHOP, encoding="utf-8")
    import_catalog(sessions, settings, clock, tmp_path / "catalog")
    assert run("environments", "apply", str(EXAMPLES / "environments.yaml")).exit_code == 0


# ---------------------------------------------------------------- environments


def test_environments_apply_sets_them_in_file_order(run: Run) -> None:
    applied = run("environments", "apply", str(EXAMPLES / "environments.yaml"))

    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout == "3 environments: staging, production-eu, production-us\n"
    assert json_of(run("environments", "list", "--json")) == [
        {"slug": "staging", "name": "Staging", "position": 0, "production": False},
        {"slug": "production-eu", "name": "Production (EU)", "position": 1, "production": True},
        {"slug": "production-us", "name": "Production (US)", "position": 2, "production": True},
    ]
    assert run("environments", "list").stdout.splitlines() == [
        f"  0 {'staging':<20} Staging",
        f"  1 {'production-eu':<20} Production (EU) (production)",
        f"  2 {'production-us':<20} Production (US) (production)",
    ]
    # applying again changes nothing
    assert run("environments", "apply", str(EXAMPLES / "environments.yaml")).stdout == applied.stdout


def test_environments_apply_refuses_a_file_without_slugs(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "envs.yaml"
    bad.write_text("environments:\n  - slug: staging\n  - name: Nameless\n", encoding="utf-8")

    result = run("environments", "apply", str(bad))

    assert (result.exit_code, result.stderr) == (1, f"error: {bad}: environment 1 needs a slug\n")
    assert json_of(run("environments", "list", "--json")) == []


# ---------------------------------------------------------------- reports from files


def test_the_example_history_reports_once_and_replays_unchanged(
    run: Run, sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock
) -> None:
    import_catalog(sessions, settings, clock, EXAMPLES)
    assert run("environments", "apply", str(EXAMPLES / "environments.yaml")).exit_code == 0
    deploys_file = str(EXAMPLES / "deploys.yaml")

    first = json_of(run("deploys", "report", "--file", deploys_file, "--json"))

    assert (len(first), {r["outcome"] for r in first}) == (137, {"created"})
    assert {r["deploy"]["deployed_by"] for r in first} == {"system:cli"}
    stored = count_rows(sessions)
    assert stored[0] == 137

    second = json_of(run("deploys", "report", "--file", deploys_file, "--json"))

    assert [r["outcome"] for r in second] == ["unchanged"] * 137
    assert [r["deploy"] for r in second] == [r["deploy"] for r in first]
    assert count_rows(sessions) == stored
    live = json_of(run("deploys", "live", "checkout-api", "--json"))
    assert {e["environment"]["slug"]: e["deploy"]["release"]["version"] for e in live["environments"]} == {
        "staging": "1.3.0",
        "production-eu": "1.2.0",
        "production-us": "1.2.0",
    }
    # the CLI does not read the registry: that is the portal's job
    assert live["registry"]["error"] == "no registry is configured"
    listed = json_of(
        run("deploys", "list", "checkout-api", "--environment", "staging", "--limit", "2", "--json")
    )
    assert ([d["release"]["version"] for d in listed["items"]], listed["total"]) == (["1.3.0", "1.2.0"], 4)


def test_live_in_text_says_where_nothing_runs(run: Run, shop_catalog: None) -> None:
    reported = run(
        "deploys", "report", "--service", "checkout", "--environment", "staging", "--version", "1.0.0",
        "--started-at", "2026-11-25T11:00:00+00:00", "--finished-at", "2026-11-25T11:05:00+00:00",
    )  # fmt: skip
    assert reported.exit_code == 0, reported.stderr

    result = run("deploys", "live", "checkout")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{'Staging':<16} 1.0.0 by system:cli at 2026-11-25 11:05",
        f"{'Production (EU)':<16} -",
        f"{'Production (US)':<16} -",
    ]


BAD_FILES: list[tuple[str, str]] = [
    # the second report's version has a space
    (
        "deploys:\n"
        "  - {id: a, service: checkout, environment: staging, version: 1.0.0, status: succeeded,"
        " started_at: '2026-11-25T11:00:00Z', finished_at: '2026-11-25T11:05:00Z'}\n"
        "  - {id: b, service: checkout, environment: staging, version: 1.0 beta, status: succeeded,"
        " started_at: '2026-11-25T11:00:00Z'}\n",
        "report 1: version: String should match pattern",
    ),
    # the third report names an environment nobody set up
    (
        "- {id: a, service: checkout, environment: staging, version: 1.0.0, status: running,"
        " started_at: '2026-11-25T11:00:00Z'}\n"
        "- {id: b, service: checkout, environment: staging, version: 1.1.0, status: running,"
        " started_at: '2026-11-25T11:00:00Z'}\n"
        "- {id: c, service: checkout, environment: qa, version: 1.2.0, status: running,"
        " started_at: '2026-11-25T11:00:00Z'}\n",
        "report 2 (c): no environment 'qa'",
    ),
    # not a list of reports at all
    ("deploys: {id: a}\n", "expected a list of deploy reports"),
]
"""(file content, what the error says)."""


def test_a_bad_file_stores_nothing_and_names_the_report(
    run: Run, shop_catalog: None, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    for n, (content, says) in enumerate(BAD_FILES):
        bad = tmp_path / f"bad-{n}.yaml"
        bad.write_text(content, encoding="utf-8")

        result = run("deploys", "report", "--file", str(bad))

        assert result.exit_code == 1, (content, result.stdout)
        assert result.stderr.startswith("error: ") and says in result.stderr, result.stderr
        assert count_rows(sessions) == (0, 0)
    as_json = run("deploys", "report", "--file", str(tmp_path / "bad-0.yaml"), "--json")
    error = json.loads(as_json.stderr)["error"]
    assert (as_json.exit_code, error["code"]) == (1, "deploys.bad_file")
    assert error["message"].startswith(f"{tmp_path / 'bad-0.yaml'}: report 1: version: ")


# ---------------------------------------------------------------- one report


def test_the_same_id_twice_is_one_deploy(
    run: Run, shop_catalog: None, sessions: sessionmaker[Session]
) -> None:
    args = (
        "deploys", "report", "--service", "checkout", "--environment", "production-eu", "--version", "1.4.2",
        "--image", "registry.example.com/shop/checkout:1.4.2", "--commit", "8a23e19393298bfa",
        "--id", "jenkins-1234",
        "--started-at", "2026-11-25T11:00:00Z", "--finished-at", "2026-11-25T11:07:00Z",
    )  # fmt: skip

    first = run(*args)
    second = run(*args)

    # checkout is tier 1 and nobody approved this production deploy: said under the line
    flagged = (
        "  flagged: Tier-1 production deploy without an approval: nobody approved shipping checkout 1.4.2 to "
        "Production (EU). Ask first (POST /api/v1/approvals) and report the approved request's id as "
        "`approval`.\n"
    )
    assert (first.exit_code, first.stdout) == (
        0,
        "created: checkout 1.4.2 -> production-eu (succeeded) #1\n" + flagged,
    )
    assert (second.exit_code, second.stdout) == (
        0,
        "unchanged: checkout 1.4.2 -> production-eu (succeeded) #1\n" + flagged,
    )
    # a retry that leaves the times out still lands on the same deploy
    assert run(*args[:-4]).exit_code == 0
    assert count_rows(sessions) == (1, 1)
    table = run("deploys", "list", "checkout")
    assert table.exit_code == 0, table.stderr
    assert " 1 deploy " in table.stdout
    [row] = [line for line in table.stdout.splitlines() if "jenkins" in line or line.startswith("│ 1 ")]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "1",
        "checkout",
        "1.4.2",
        "production-eu",
        "succeeded",
        "system:cli",
        "2026-11-25 11:00",
    ]
    [deploy] = json_of(run("deploys", "list", "--json"))["items"]
    assert (deploy["external_id"], deploy["source"], deploy["deployed_by"], deploy["release"]["commit"]) == (
        "jenkins-1234",
        "cli",
        "system:cli",
        "8a23e19393298bfa",
    )


def test_a_report_needs_service_environment_and_version(run: Run, shop_catalog: None) -> None:
    result = run("deploys", "report", "--service", "checkout", "--version", "1.0.0")

    assert (result.exit_code, result.stderr) == (
        1,
        "error: --service, --environment and --version are required (or --file)\n",
    )


def test_a_report_names_its_approval_which_must_exist(run: Run, shop_catalog: None) -> None:
    result = run(
        "deploys", "report", "--service", "checkout", "--environment", "production-eu", "--version", "1.0.0",
        "--id", "jenkins-7", "--approval", "99",
    )  # fmt: skip

    assert (result.exit_code, result.stderr) == (
        1,
        "error: deploy 'jenkins-7': approval 99 does not exist (ask with POST /api/v1/approvals)\n",
    )


# ---------------------------------------------------------------- reporting to a portal's API


@pytest.fixture
def portal(settings: Settings, shop_catalog: None) -> Iterator[str]:
    """The portal served by uvicorn on a free port (system clock); its base URL."""
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/api/v1/openapi.json", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the portal did not start"
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=10)
    app.state.runtime.close()


def test_report_to_the_api_with_a_token(
    run: Run, portal: str, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    token = make_token(sessions, clock, user=None, scopes=["deploy"], team="shop", name="ci-shop")
    args = ("deploys", "report", "--service", "checkout", "--environment", "staging", "--version", "2.0.0")

    answer = json_of(run(*args, "--id", "gh-99", "--api", portal, "--token", token, "--json"))

    assert [(r["outcome"], r["deploy"]["external_id"], r["deploy"]["deployed_by"]) for r in answer] == [
        ("created", "gh-99", "token:ci-shop")
    ]
    assert (answer[0]["deploy"]["source"], answer[0]["deploy"]["status"]) == ("cli", "succeeded")
    assert count_rows(sessions) == (1, 1)
    bad_token = run(*args, "--id", "gh-100", "--api", portal, "--token", "qd_not-a-token")
    assert (bad_token.exit_code, bad_token.stderr) == (1, "error: the API token is not valid\n")
    no_token = run(*args, "--id", "gh-101", "--api", portal)
    assert (no_token.exit_code, no_token.stderr) == (
        1,
        "error: reporting to --api needs --token (or QD_API_TOKEN)\n",
    )
    nowhere = run(*args, "--id", "gh-102", "--api", f"http://127.0.0.1:{free_port()}", "--token", token)
    assert (nowhere.exit_code, nowhere.stderr.startswith("error: portal cannot be reached: ")) == (1, True)
    assert count_rows(sessions) == (1, 1)


def test_api_is_the_portal_with_or_without_its_api_path(
    run: Run, portal: str, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    token = make_token(sessions, clock, user=None, scopes=["deploy"], team="shop", name="ci-shop")
    args = ("deploys", "report", "--service", "checkout", "--environment", "staging", "--version", "2.0.0")

    outcomes = [
        json_of(run(*args, "--id", "gh-7", "--api", api, "--token", token, "--json"))[0]["outcome"]
        for api in (f"{portal}/api/v1", f"{portal}/api/v1/", f"{portal}/", portal)
    ]

    assert outcomes == ["created", "unchanged", "unchanged", "unchanged"]
    assert count_rows(sessions) == (1, 1)
