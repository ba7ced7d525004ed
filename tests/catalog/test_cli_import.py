"""`quarterdeck import PATH --json` and `quarterdeck whois NAME --json`, run as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from quarterdeck.config import Settings

GOOD = """\
apiVersion: quarterdeck/v1
kind: Team
slug: payments-team
name: Payments
email: payments@example.com
chat: "#payments"
---
apiVersion: quarterdeck/v1
kind: Service
slug: payments-api
title: Payments API
owner: payments-team
tier: 1
"""

BAD = """\
apiVersion: quarterdeck/v1
kind: Service
slug: ledger
owner: payments-team
tier: 9
"""

REPORT_KEYS = {
    "source",
    "revision",
    "files",
    "entities",
    "created",
    "updated",
    "unchanged",
    "removed",
    "ignored_files",
    "errors",
    "notices",
    "outcomes",
}


def quarterdeck(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child process against the test's database; cwd holds no quarterdeck.toml."""
    env = {
        **os.environ,
        "QD_DATABASE_URL": settings.database_url,
        "QD_GIT_CACHE_DIR": str(settings.git_cache_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "quarterdeck", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def json_out(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def test_import_reports_bad_files_in_json_and_exits_1(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "bad").mkdir(parents=True)
    (source / "quarterdeck.yaml").write_text(GOOD, encoding="utf-8")
    (source / "bad" / "quarterdeck.yaml").write_text(BAD, encoding="utf-8")

    done = quarterdeck(settings, tmp_path, "import", str(source), "--json")

    assert done.returncode == 1, done.stderr
    report = json_out(done)
    assert set(report) == REPORT_KEYS
    assert (report["files"], report["entities"], report["created"], report["updated"], report["removed"]) == (
        2,
        2,
        2,
        0,
        0,
    )
    assert report["errors"] == [
        {
            "file": "bad/quarterdeck.yaml",
            "line": 5,
            "message": "tier: Input should be less than or equal to 4",
        }
    ]
    assert report["source"] == f"dir:{source.resolve()}"

    again = quarterdeck(settings, tmp_path, "import", str(source), "--json")

    assert again.returncode == 1, again.stderr
    second = json_out(again)
    assert (second["created"], second["updated"], second["unchanged"], second["removed"]) == (0, 0, 2, 0)
    assert len(second["errors"]) == 1

    whois = quarterdeck(settings, tmp_path, "whois", "payments-api", "--json")

    assert whois.returncode == 0, whois.stderr
    answer = json_out(whois)
    assert (answer["type"], answer["slug"], answer["owner"]["slug"]) == (
        "service",
        "payments-api",
        "payments-team",
    )
    assert answer["channels"] == ["#payments"] and answer["emails"] == ["payments@example.com"]

    (source / "bad" / "quarterdeck.yaml").write_text(BAD.replace("tier: 9", "tier: 3"), encoding="utf-8")
    fixed = quarterdeck(settings, tmp_path, "import", str(source), "--json")

    assert fixed.returncode == 0, fixed.stderr
    assert (json_out(fixed)["created"], json_out(fixed)["errors"]) == (1, [])


def test_import_of_a_missing_path_exits_1_with_an_error(tmp_path: Path, sqlite_template: Path) -> None:
    # the path is checked before the database is read: one dialect is enough
    database = tmp_path / "quarterdeck.db"
    shutil.copy(sqlite_template, database)
    settings = Settings(database_url=f"sqlite:///{database}", git_cache_dir=tmp_path / "git")
    missing = tmp_path / "no-such-folder"

    done = quarterdeck(settings, tmp_path, "import", str(missing))

    assert done.returncode == 1
    assert done.stderr.startswith("error:"), done.stderr
    assert str(missing) in done.stderr
    assert done.stdout == ""

    as_json = quarterdeck(settings, tmp_path, "import", str(missing), "--json")

    assert as_json.returncode == 1 and as_json.stdout == ""
    error = json.loads(as_json.stderr)["error"]
    assert error["code"] == "import.path_not_found" and str(missing) in error["message"]
