"""`quarterdeck jobs list|retry|cancel` in-process with Typer's CliRunner, on SQLite and PostgreSQL.
(`quarterdeck worker` runs as a real process in test_kill.py and test_due.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.jobs import store
from quarterdeck.operations import cli as jobs_cli
from tests.jobs.helpers import add_job, job_row

Run = Callable[..., Result]


@pytest.fixture
def run(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """`quarterdeck ARGS...` (with the job commands) against the test's database."""
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    jobs_cli.register(app)
    env = {"QD_DATABASE_URL": settings.database_url, "COLUMNS": "200"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return invoke


@pytest.fixture
def parked(writers: sessionmaker[Session], clock: FrozenClock) -> int:
    job_id = add_job(writers, clock, "mail.send", max_attempts=1)
    with transaction(writers) as session:
        store.claim(session, "w", clock.now(), leases={"mail.send": 30}, limit=1)
        store.park(
            session,
            job_id,
            "w",
            clock.now(),
            error="Traceback ...\nSMTPError: 550 no such user",
            permanent=False,
        )
    return job_id


def test_list_shows_parked_jobs_with_their_last_error(
    run: Run, parked: int, writers: sessionmaker[Session], clock: FrozenClock
) -> None:
    add_job(writers, clock, "other.kind")

    result = run("jobs", "list", "--state", "failed")
    as_json = run("jobs", "list", "--kind", "other.kind", "--json")

    assert result.exit_code == 0, result.output
    assert "SMTPError: 550 no such user" in result.output
    assert "other.kind" not in result.output
    assert as_json.exit_code == 0, as_json.output
    assert [(j["kind"], j["state"]) for j in json.loads(as_json.output)] == [("other.kind", "pending")]


def test_retry_then_cancel(run: Run, parked: int, sessions: sessionmaker[Session]) -> None:
    retried = run("jobs", "retry", str(parked), "--json")
    assert retried.exit_code == 0, retried.output
    assert (json.loads(retried.output)["state"], json.loads(retried.output)["attempts"]) == ("pending", 0)

    cancelled = run("jobs", "cancel", str(parked))
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.strip() == f"job {parked} (mail.send): cancelled"
    assert job_row(sessions, parked).state == "cancelled"


def test_refused_moves_and_missing_jobs_exit_1_with_the_reason(run: Run, parked: int) -> None:
    pending = run("jobs", "cancel", str(parked))  # parked -> cancelled: fine
    again = run("jobs", "cancel", str(parked), "--json")
    missing = run("jobs", "retry", "999999")

    assert pending.exit_code == 0
    assert again.exit_code == 1
    assert json.loads(again.stderr)["error"]["code"] == "job.invalid_transition"
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "error: no job 999999"


def test_a_worker_bigger_than_its_connection_pool_is_refused(run: Run) -> None:
    result = run("worker", "--concurrency", "40")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: --concurrency 40 needs more connections than QD_DB_POOL_SIZE=20 gives"
    )
