"""`quarterdeck pipelines apply|show|list`, run in-process with Typer's CliRunner against the test's
database. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from quarterdeck.cli import app as cli
from quarterdeck.config import Settings
from tests.deploys.helpers import put_environments
from tests.helpers import create_service, create_team

SERVICE_OVERRIDE = """\
name: checkout-careful
description: Checkout goes slower than its tier asks.
steps:
  - approval: {who: {team_role: owner}, two_person: true}
  - deploy: {weight: 5}
  - wait: {duration: 10m, skippable: true}
  - deploy: {weight: 100}
"""


def run(settings: Settings, *args: str) -> Result:
    env = {
        "QD_DATABASE_URL": settings.database_url,
        "QD_GIT_CACHE_DIR": str(settings.git_cache_dir),
        "COLUMNS": "200",
    }
    return CliRunner().invoke(cli, list(args), env=env)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def shop(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Staging and production, team shop and its tier-1 checkout; a pipeline file; run from a bare folder."""
    monkeypatch.chdir(tmp_path)
    put_environments(client)
    create_team(client, "shop")
    create_service(client, "checkout", "shop", tier=1)
    path = tmp_path / "pipelines" / "checkout.yaml"
    path.parent.mkdir()
    path.write_text(SERVICE_OVERRIDE, encoding="utf-8")
    return path


def test_apply_creates_once_then_answers_unchanged(settings: Settings, shop: Path) -> None:
    created = run(settings, "pipelines", "apply", str(shop), "--service", "checkout", "--env", "production")
    again = json_of(
        run(
            settings,
            "pipelines",
            "apply",
            str(shop),
            "--service",
            "checkout",
            "--env",
            "production",
            "--json",
        )
    )

    assert created.exit_code == 0, created.stderr
    assert created.stdout.startswith(
        "created: service:checkout@production (checkout-careful) version 1, sha256:"
    )
    assert (again["outcome"], again["pipeline"]["version"], again["pipeline"]["updated_by"]) == (
        "unchanged",
        1,
        "system:cli",
    )


def test_show_says_which_pipeline_and_why(settings: Settings, shop: Path) -> None:
    assert (
        run(
            settings, "pipelines", "apply", str(shop), "--service", "checkout", "--env", "production"
        ).exit_code
        == 0
    )

    shown = json_of(run(settings, "pipelines", "show", "checkout", "--env", "production", "--json"))
    text = run(settings, "pipelines", "show", "checkout", "--env", "staging")

    assert (shown["pipeline"]["name"], shown["reasons"], shown["source"]["version"]) == (
        "checkout-careful",
        ["service checkout overrides production"],
        1,
    )
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "checkout in staging: direct (product:direct, as shipped)"
    assert lines[2:4] == ["why:", "  - default for tier 1 outside production"]
    assert lines[-2:] == ["steps (on failure: rollback):", "  1. Send all of the traffic to the new version"]


def test_list_shows_overrides_and_the_product_defaults(settings: Settings, shop: Path) -> None:
    assert run(settings, "pipelines", "apply", str(shop), "--team", "shop").exit_code == 0

    listed = json_of(run(settings, "pipelines", "list", "--json"))
    table = run(settings, "pipelines", "list")

    assert [(p["key"], p["version"]) for p in listed] == [
        ("team:shop", 1),
        ("product:direct", None),
        ("product:tier-1-production", None),
        ("product:tier-2-production", None),
        ("product:tier-3-production", None),
    ]
    assert table.exit_code == 0 and "team:shop" in table.stdout and "5 pipelines" in table.stdout


def test_a_bad_file_is_refused_naming_file_line_step_and_field(settings: Settings, shop: Path) -> None:
    shop.write_text(SERVICE_OVERRIDE.replace("duration: 10m", "duration: 10 minutes"), encoding="utf-8")

    applied = run(settings, "pipelines", "apply", str(shop), "--service", "checkout")
    as_json = run(settings, "pipelines", "apply", str(shop), "--service", "checkout", "--json")

    assert applied.exit_code == 1
    assert applied.stderr == (
        f'error: {shop}:6: steps[2] (wait): duration: "10 minutes" is not a duration; write a number of '
        'hours, minutes and seconds such as "90s", "30m", "2h" or "1h30m"\n'
    )
    assert as_json.exit_code == 1
    error = json.loads(as_json.stderr)["error"]
    assert (error["code"], error["details"][0]["step"], error["details"][0]["line"]) == (
        "pipelines.invalid",
        "steps[2] (wait)",
        6,
    )
    assert json_of(run(settings, "pipelines", "list", "--json"))[0]["key"] == "product:direct"


def test_team_and_service_together_are_refused(settings: Settings, shop: Path) -> None:
    both = run(settings, "pipelines", "apply", str(shop), "--team", "shop", "--service", "checkout")

    assert (both.exit_code, both.stderr) == (1, "error: give --team or --service, not both\n")
