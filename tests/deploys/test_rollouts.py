"""Rollouts on SQLite and PostgreSQL: a canary pipeline runs step by step as jobs through the real
`command` driver (its call log proves the order of effects and that no key was applied twice), a real
Prometheus judges the analysis (a failing one rolls back by itself and says why in one sentence),
approvals block until decided and a decision wakes the step, every control and its refusals, one
active rollout per service and environment (a second start is refused naming the first, or queued;
racing starts give one winner), freeze windows and the emergency override, unknown versions and
missing rights. Time is a frozen clock moved past waits; the worker runs due jobs in the test's thread."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import Actor
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.db import retrying_on_race
from quarterdeck.deploys import rollouts
from quarterdeck.deploys.models import Deploy
from quarterdeck.deploys.rollouts.models import Rollout, RolloutEvent
from quarterdeck.errors import Conflict
from quarterdeck.jobs import enqueue
from quarterdeck.runtime import Runtime, running
from tests.conftest import make_token, make_user
from tests.deploys.helpers import IMAGE, live_versions, post, put_environments, recording_drivers, report
from tests.helpers import Json, audit_log, bearer, create_service, create_team, error_of
from tests.prometheus_server import metrics_exporter, prometheus_server, wait_for_series

SERVICE = "checkout"
ENVIRONMENTS = (("dev", "Dev", False), ("staging", "Staging", False), ("production", "Production", True))
ERROR_RATIO = (
    'sum(rate(http_requests_total{service="{service}",code="500"}[5s])) '
    '/ sum(rate(http_requests_total{service="{service}"}[5s]))'
)
"""The exporter serves 2 failures in 52 requests a second: about 0.038."""


def canary(*, condition: str = "< 0.05", count: int = 2, failure_limit: int = 0, **extra: Any) -> Json:
    return {
        "name": "canary-test",
        "steps": [
            {"deploy": {"weight": 10}},
            {"wait": {"duration": "30s", "skippable": extra.pop("skippable", False)}},
            {
                "analysis": {
                    "interval": "10s",
                    "count": count,
                    "failure_limit": failure_limit,
                    "queries": {"error-rate": {"query": ERROR_RATIO, "condition": condition}},
                }
            },
            {"deploy": {"weight": 100}},
        ],
        **extra,
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping a small exporter for `checkout` (error ratio about 0.038)."""
    folder = tmp_path_factory.mktemp("prometheus")
    with metrics_exporter(SERVICE) as target, prometheus_server(folder, [target]) as url:
        wait_for_series(url, ERROR_RATIO.replace("{service}", SERVICE))
        yield url


@pytest.fixture
def call_log(tmp_path: Path) -> Path:
    return tmp_path / "calls.log"


@pytest.fixture
def settings(db_url: str, tmp_path: Path, call_log: Path, request: pytest.FixtureRequest) -> Settings:
    """The command driver records each call as `METHOD KEY WEIGHT` in the call log."""
    drivers = recording_drivers(tmp_path / "drivers.yaml", call_log)
    prometheus_url = request.getfixturevalue("prometheus") if "prometheus" in request.fixturenames else None
    return Settings(
        database_url=db_url,
        git_cache_dir=tmp_path / "git",
        embedded_worker=False,
        deploy_drivers=drivers,
        deploy_state_dir=tmp_path / "state",
        prometheus_url=prometheus_url,
    )


class Org:
    """Team shop and its tier-3 service checkout, released as 1.0.0 (live in staging) and 1.1.0; a
    member of shop (the deployer), a second member, and someone of another team."""

    def __init__(self, client: TestClient, app: FastAPI, runtime: Runtime, clock: FrozenClock) -> None:
        self.client, self.app, self.runtime, self.clock = client, app, runtime, clock
        put_environments(client, ENVIRONMENTS)
        create_team(client, "shop")
        create_team(client, "other")
        create_service(client, SERVICE, "shop", tier=3, image=IMAGE)
        post(client, report("1.0.0", "staging", service=SERVICE))
        post(client, report("1.1.0", "dev", service=SERVICE))
        self.tokens = {}
        for email, team in (
            ("dev@shop.example", "shop"),
            ("second@shop.example", "shop"),
            ("x@other.example", "other"),
        ):
            make_user(runtime.sessions, clock, email, teams={team: "member"})
            self.tokens[email] = make_token(
                runtime.sessions, clock, user=email, scopes=["deploy"], name=email.split("@")[0]
            )
        self.worker = runtime.worker()

    def as_(self, email: str) -> TestClient:
        return TestClient(self.app, headers=bearer(self.tokens[email]))

    def pipeline(self, body: Json, environment: str = "staging") -> None:
        response = self.client.put(
            f"/api/v1/pipelines/service/{SERVICE}?environment={environment}", json=body
        )
        assert response.status_code in (200, 201), response.text

    def start(
        self,
        version: str = "1.1.0",
        environment: str = "staging",
        *,
        status: int = 201,
        who: str = "dev@shop.example",
        **extra: Any,
    ) -> Json:
        with self.as_(who) as client:
            response = client.post(
                f"/api/v1/services/{SERVICE}/rollouts",
                json={"version": version, "environment": environment, **extra},
            )
        assert response.status_code == status, response.text
        answer: Json = response.json()
        return answer

    def control(
        self,
        rollout_id: int,
        action: str,
        *,
        status: int = 200,
        who: str = "dev@shop.example",
        reason: str | None = None,
    ) -> Json:
        with self.as_(who) as client:
            response = client.post(
                f"/api/v1/rollouts/{rollout_id}/{action}", json={"reason": reason} if reason else None
            )
        assert response.status_code == status, response.text
        answer: Json = response.json()
        return answer

    def get(self, rollout_id: int) -> Json:
        response = self.client.get(f"/api/v1/rollouts/{rollout_id}")
        assert response.status_code == 200, response.text
        answer: Json = response.json()
        return answer

    def run(self, seconds: float = 0) -> int:
        """Move the clock on, then run every job due."""
        self.clock.at += timedelta(seconds=seconds)
        return self.worker.run_due()

    def events(self, rollout_id: int) -> list[Json]:
        response = self.client.get(f"/api/v1/rollouts/{rollout_id}/events")
        assert response.status_code == 200, response.text
        events: list[Json] = response.json()["events"]
        return events


@pytest.fixture
def org(client: TestClient, app_under_test: FastAPI, runtime: Runtime, clock: FrozenClock) -> Org:
    return Org(client, app_under_test, runtime, clock)


def calls(path: Path) -> list[tuple[str, str, str]]:
    """(method, key, weight) of each driver call, in order."""
    if not path.exists():
        return []
    return [tuple(line.split()) for line in path.read_text().splitlines()]  # type: ignore[misc]


def states(rollout: Json) -> list[str]:
    return [step["state"] for step in rollout["steps"]]


def count_rollouts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        rollout_count = session.scalar(select(func.count()).select_from(Rollout)) or 0
        deploy_count = session.scalar(select(func.count()).select_from(Deploy)) or 0
    return rollout_count, deploy_count


# ---------------------------------------------------------------- the happy path


def test_a_canary_runs_every_step_once_in_order(prometheus: str, org: Org, call_log: Path) -> None:
    org.pipeline(canary())
    started = org.start()
    rid = started["id"]
    assert (started["state"], started["baseline_version"], started["weight"]) == ("running", "1.0.0", 0)
    assert started["pipeline"]["name"] == "canary-test" and len(started["pipeline"]["digest"]) == 64
    assert states(started) == ["pending"] * 4

    org.run()  # deploy 10 %, then the wait starts
    rollout = org.get(rid)
    assert states(rollout) == ["succeeded", "waiting", "pending", "pending"]
    assert rollout["weight"] == 10
    wait = rollout["steps"][1]
    assert wait["seconds_left"] == 30.0 and wait["title"] == "Wait 30 s"
    assert org.run(10) == 0  # not due yet: nothing runs

    org.run(20)  # the wait is over; the analysis waits for its first interval
    assert states(org.get(rid)) == ["succeeded", "succeeded", "waiting", "pending"]
    org.run(10)
    analysis = org.get(rid)["steps"][2]["analysis"]
    assert (analysis["measured"], analysis["failures"]) == (1, 0)
    [result] = analysis["intervals"][0]["results"]
    assert result["verdict"] == "pass" and 0.03 < result["value"] < 0.045 and result["limit"] == 0.05

    org.run(10)  # the second measurement passes; 100 % promotes
    rollout = org.get(rid)
    assert (rollout["state"], rollout["weight"], rollout["final"]) == ("succeeded", 100, True)
    assert states(rollout) == ["succeeded"] * 4
    assert calls(call_log) == [
        ("prepare", f"rollout-{rid}-step-0-prepare", "0"),
        ("set_traffic", f"rollout-{rid}-step-0-traffic", "10"),
        ("promote", f"rollout-{rid}-step-3-promote", "100"),
    ]
    wait = rollout["steps"][1]
    assert (wait["waiting_seconds"], wait["active_seconds"] < 5) == (30.0, True)
    assert rollout["steps"][2]["waiting_seconds"] == 20.0
    assert live_versions(org.client)["staging"] == "1.1.0"
    deploy = org.client.get(f"/api/v1/deploys/{rollout['deploy_id']}").json()
    assert (deploy["status"], deploy["source"], deploy["deployed_by"]) == (
        "succeeded",
        "portal",
        "token:dev",
    )

    types = [(e["type"], e["payload"].get("to")) for e in org.events(rid)]
    assert types[0] == ("state", "running") and types[-1] == ("state", "succeeded")
    assert [t for t in types if t[0] == "analysis"] == [("analysis", None)] * 2
    ids = [e["id"] for e in org.events(rid)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    later = org.client.get(f"/api/v1/rollouts/{rid}/events?after={ids[-3]}").json()
    assert [e["id"] for e in later["events"]] == ids[-2:] and later["final"] is True

    # A job of a step that is done (a retry after a crash, a stale wake-up) changes nothing.
    with org.runtime.writers() as session, session.begin():
        enqueue(
            session,
            rollouts.JOB_KIND,
            {"rollout_id": rid, "step": 0},
            now=org.clock.now(),
            idempotency_key="stale",
        )
    assert org.run() == 1
    assert len(calls(call_log)) == 3 and org.get(rid)["revision"] == rollout["revision"]


# ---------------------------------------------------------------- analysis and rollback


def test_a_failing_analysis_rolls_back_by_itself_and_says_why(
    prometheus: str, org: Org, call_log: Path
) -> None:
    org.pipeline(canary(condition="< 0.01", count=3, failure_limit=1))
    rid = org.start()["id"]
    org.run()
    org.run(30)
    org.run(10)  # one failure is tolerated
    assert org.get(rid)["state"] == "running"
    org.run(10)  # the second is one too many: roll back
    org.run()
    rollout = org.get(rid)
    assert (rollout["state"], rollout["weight"]) == ("rolled_back", 0)
    assert re.fullmatch(
        r"Analysis error-rate failed 2 of 3 intervals: 0\.0[34]\d* >= 0\.01 at 12:00\.", rollout["reason"]
    ), rollout["reason"]
    assert states(rollout) == ["succeeded", "succeeded", "failed", "skipped"]
    assert rollout["steps"][2]["error"] == rollout["reason"]
    assert [c[0] for c in calls(call_log)] == ["prepare", "set_traffic", "rollback"]
    assert calls(call_log)[-1][1] == f"rollout-{rid}-step-2-rollback"
    deploy = org.client.get(f"/api/v1/deploys/{rollout['deploy_id']}").json()
    assert deploy["status"] == "rolled_back"
    assert live_versions(org.client)["staging"] == "1.0.0"


# ---------------------------------------------------------------- approvals


def approval_pipeline(**approval: Any) -> Json:
    return {
        "name": "approved",
        "steps": [{"approval": {"who": {"team_role": "member"}, **approval}}, {"deploy": {"weight": 100}}],
    }


def test_an_approval_blocks_until_decided_and_the_decision_wakes_the_step(org: Org, call_log: Path) -> None:
    org.pipeline(approval_pipeline(two_person=True))
    rid = org.start()["id"]
    org.run()
    rollout = org.get(rid)
    assert rollout["state"] == "waiting_approval" and rollout["controls"] == [
        "pause",
        "abort",
        "approve",
        "reject",
    ]
    approval = rollout["steps"][0]["approval"]
    assert (approval["status"], approval["two_person"], approval["who"]) == (
        "pending",
        True,
        "a member of team shop",
    )
    assert org.run(3600) == 1 and org.get(rid)["state"] == "waiting_approval"  # re-checked, still waiting
    assert calls(call_log) == []

    refused = org.control(rid, "approve", status=403)  # the deployer asked: a second person decides
    assert "second person" in refused["error"]["message"]
    with org.as_("second@shop.example") as second:
        response = second.post(f"/api/v1/approvals/{approval['request_id']}/approve")
    assert response.status_code == 200, response.text
    assert org.run() == 2  # woken at once (no clock moved): the approval passes, then 100 %
    rollout = org.get(rid)
    assert rollout["state"] == "succeeded"
    assert rollout["steps"][0]["approval"]["decided_by"] == "token:second"
    assert (
        org.client.get(f"/api/v1/deploys/{rollout['deploy_id']}").json()["approval"] == approval["request_id"]
    )


def test_a_rejected_approval_fails_the_step_and_rolls_back(org: Org, call_log: Path) -> None:
    org.pipeline(approval_pipeline())
    rid = org.start()["id"]
    org.run()
    org.control(rid, "reject", who="second@shop.example", reason="not during the sale")
    org.run()
    rollout = org.get(rid)
    request = rollout["steps"][0]["approval"]["request_id"]
    assert rollout["state"] == "rolled_back"
    assert rollout["reason"] == f"Approval {request} was rejected by token:second: not during the sale."
    assert calls(call_log) == []  # the new version never took traffic: nothing to roll back


# ---------------------------------------------------------------- controls


def test_pause_resume_skip_and_refusals(org: Org, call_log: Path) -> None:
    org.pipeline(
        {
            "name": "waits",
            "steps": [
                {"deploy": {"weight": 20}},
                {"wait": {"duration": "1h"}},
                {"wait": {"duration": "1h", "skippable": True}},
                {"deploy": {"weight": 100}},
            ],
        }
    )
    rid = org.start()["id"]
    org.run()
    refused = org.control(rid, "skip", status=409)
    assert refused["error"]["code"] == "rollouts.not_allowed"
    assert (
        refused["error"]["message"]
        == "step 2 (wait) is not skippable: its pipeline does not allow skipping it"
    )
    assert org.control(rid, "retry", status=409)["error"]["message"].endswith("only a failed step is retried")

    paused = org.control(rid, "pause", reason="looking at a graph")
    assert (paused["state"], paused["reason"]) == (
        "paused",
        "Paused by token:dev: looking at a graph.",
    )
    assert org.control(rid, "pause", status=409)["error"]["message"].endswith(
        "only a running rollout can be paused"
    )
    org.run(3600)  # the wait's job comes due while paused: nothing moves
    assert org.get(rid)["steps"][1]["state"] == "waiting"
    resumed = org.control(rid, "resume")
    assert (
        resumed["state"] == "running" and resumed["steps"][1]["seconds_left"] == 3600.0
    )  # the pause is not counted
    org.run(3600)
    assert org.get(rid)["steps"][2]["state"] == "waiting"
    skipped = org.control(rid, "skip")
    assert skipped["controls"] == ["pause", "skip", "promote", "abort"]
    org.run()
    assert org.get(rid)["state"] == "succeeded"
    actions = [e.action for e in audit_log(org.runtime.sessions) if e.target_type == "rollout"]
    assert actions == ["rollout.start", "rollout.pause", "rollout.resume", "rollout.skip"]
    assert [c[0] for c in calls(call_log)] == ["prepare", "set_traffic", "promote"]


def test_promote_now_goes_straight_to_all_of_the_traffic(org: Org, call_log: Path) -> None:
    org.pipeline(canary())
    rid = org.start()["id"]
    org.run()
    promoted = org.control(rid, "promote")
    assert promoted["controls"] == ["pause", "abort"]
    org.run()
    rollout = org.get(rid)
    assert (rollout["state"], rollout["weight"]) == ("succeeded", 100)
    assert states(rollout) == ["succeeded", "skipped", "skipped", "skipped"]
    assert calls(call_log)[-1] == ("promote", f"rollout-{rid}-step-1-promote", "100")
    assert (
        org.control(rid, "abort", status=409)["error"]["message"]
        == f"rollout {rid} is succeeded: it is finished"
    )


def test_abort_rolls_back_to_the_version_live_before(org: Org, call_log: Path) -> None:
    org.pipeline(canary())
    rid = org.start()["id"]
    org.run()
    aborting = org.control(rid, "abort", reason="wrong build")
    assert aborting["state"] == "rolling_back"
    org.run()
    rollout = org.get(rid)
    assert (rollout["state"], rollout["reason"]) == ("aborted", "Aborted by token:dev: wrong build.")
    assert calls(call_log)[-1] == ("rollback", f"rollout-{rid}-step-1-rollback", "0")
    assert org.client.get(f"/api/v1/deploys/{rollout['deploy_id']}").json()["status"] == "rolled_back"
    assert live_versions(org.client)["staging"] == "1.0.0"


def test_a_failed_step_pauses_under_on_failure_pause_and_is_retried(org: Org, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    check = [
        sys.executable,
        "-c",
        f"import os, sys; print('checking'); sys.exit(0 if os.path.exists({str(flag)!r}) else 3)",
    ]
    org.pipeline(
        {
            "name": "smoke",
            "on_failure": "pause",
            "steps": [{"run": {"command": check, "timeout": "30s"}}, {"deploy": {"weight": 100}}],
        }
    )
    rid = org.start()["id"]
    org.run()
    rollout = org.get(rid)
    assert rollout["state"] == "paused" and rollout["controls"] == ["retry", "abort"]
    assert rollout["reason"].startswith(
        f"Step 1 (run {sys.executable}) failed: command {sys.executable!r} exited with code 3"
    )
    log = org.client.get(f"/api/v1/rollouts/{rid}/steps/0/log").json()
    assert "checking" in log["lines"]
    flag.touch()
    org.control(rid, "retry")
    org.run()
    rollout = org.get(rid)
    assert rollout["state"] == "succeeded" and rollout["steps"][0]["runs"] == 2


# ---------------------------------------------------------------- one at a time, queues, races


def test_a_second_start_is_refused_naming_the_first_or_queued(org: Org, call_log: Path) -> None:
    org.pipeline(canary())
    first = org.start()
    error = error_of(
        org.as_("second@shop.example").post(
            f"/api/v1/services/{SERVICE}/rollouts", json={"version": "1.1.0", "environment": "staging"}
        ),
        409,
        "rollouts.busy",
    )
    assert error["message"].startswith(
        f"rollout {first['id']} of checkout in staging is running (version 1.1.0, started by token:dev, "
        f"/rollouts/{first['id']})"
    )
    assert error["details"]["url"] == f"/rollouts/{first['id']}"
    queued = org.start("1.0.0", queue=True)
    assert (queued["state"], queued["queued_behind"], queued["deploy_id"]) == ("queued", first["id"], None)
    org.control(first["id"], "promote")
    org.run()
    assert org.get(first["id"])["state"] == "succeeded"
    started = org.get(queued["id"])
    assert started["state"] in ("running", "succeeded") and started["baseline_version"] == "1.1.0"
    org.run()
    deploy = org.client.get(f"/api/v1/deploys/{started['deploy_id']}").json()
    assert deploy["deployed_by"] == "token:dev"


def test_racing_starts_give_one_rollout_and_one_refusal(org: Org, runtime: Runtime) -> None:
    org.pipeline(canary())
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def start() -> None:
        with runtime.writers() as session:
            barrier.wait()
            try:
                retrying_on_race(
                    session,
                    lambda: rollouts.start_rollout(
                        session, Actor.system("race"), SERVICE, "1.1.0", "staging", at=org.clock.now()
                    ),
                )
                outcomes.append("started")
            except Conflict as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["rollouts.busy", "started"]
    assert count_rollouts(runtime.sessions)[0] == 1


# ---------------------------------------------------------------- refusals that change nothing


def test_a_frozen_environment_refuses_unless_an_approved_emergency(org: Org) -> None:
    org.pipeline(canary())
    window = org.client.post(
        "/api/v1/environments/staging/freezes",
        json={
            "starts_at": "2026-11-25T10:00:00Z",
            "ends_at": "2026-11-25T18:00:00Z",
            "reason": "release weekend",
        },
    )
    assert window.status_code == 201, window.text
    before = count_rollouts(org.runtime.sessions)
    error = org.start(status=409)["error"]
    assert error["code"] == "rollouts.frozen"
    assert error["message"].startswith(
        f"staging is frozen until 2026-11-25 18:00 UTC (freeze window {window.json()['id']}: release weekend)"
    )
    assert org.start(status=403, emergency=True)["error"]["code"] == "rollouts.emergency_not_approved"
    assert count_rollouts(org.runtime.sessions) == before

    with org.as_("dev@shop.example") as dev:
        asked = dev.post(
            f"/api/v1/services/{SERVICE}/emergency-requests",
            json={"version": "1.1.0", "environment": "staging", "reason": "payment outage fix"},
        )
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    with org.as_("second@shop.example") as second:
        assert second.post(f"/api/v1/approvals/{asked.json()['id']}/approve").status_code == 200
    started = org.start(emergency=True)
    assert started["emergency_request"] == asked.json()["id"]
    [entry] = [e for e in audit_log(org.runtime.sessions) if e.action == "rollout.start"]
    assert entry.after["emergency_request"] == asked.json()["id"]  # type: ignore[index]
    assert org.client.get("/api/v1/freezes").json()[0]["active"] is True


def test_unknown_versions_and_missing_rights_are_refused_changing_nothing(org: Org) -> None:
    before = count_rollouts(org.runtime.sessions)
    error = org.start("1.1.1", status=404)["error"]
    assert error["code"] == "rollouts.unknown_version"
    assert error["message"] == "checkout has no release '1.1.1'; did you mean '1.1.0' or '1.0.0'?"
    assert org.start(environment="prod", status=404)["error"]["code"] == "deploys.unknown_environment"
    forbidden = org.start(status=403, who="x@other.example")["error"]
    assert forbidden["message"] == "only members of team 'shop' may change the service 'checkout'"
    assert count_rollouts(org.runtime.sessions) == before
    with org.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RolloutEvent)) == 0


# ---------------------------------------------------------------- the command line


def test_quarterdeck_deploy_follows_a_rollout_to_its_end(
    org: Org, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from quarterdeck.cli import app as cli

    monkeypatch.chdir(tmp_path)
    org.pipeline({"name": "direct-test", "steps": [{"deploy": {"weight": 100}}]})
    env = {
        "QD_DATABASE_URL": settings.database_url,
        "QD_DEPLOY_DRIVERS": str(settings.deploy_drivers),
        "QD_DEPLOY_STATE_DIR": str(settings.deploy_state_dir),
        "COLUMNS": "200",
    }
    refused = CliRunner().invoke(cli, ["deploy", SERVICE, "1.1.1", "--env", "staging"], env=env)
    assert refused.exit_code == 1
    assert (
        refused.stderr.strip() == "error: checkout has no release '1.1.1'; did you mean '1.1.0' or '1.0.0'?"
    )

    with running(settings) as live:  # a worker on the system clock, as `quarterdeck worker` runs
        worker = live.worker()
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            done = CliRunner().invoke(
                cli, ["deploy", SERVICE, "1.1.0", "--env", "staging", "--follow", "--json"], env=env
            )
        finally:
            worker.stop()
            thread.join(timeout=30)
    assert done.exit_code == 0, (done.stdout, done.stderr)
    documents = [json.loads(part) for part in re.split(r"\n(?=\{)", done.stdout.strip())]
    assert documents[-1]["state"] == "succeeded" and documents[-1]["weight"] == 100
    events = [d["event"]["type"] for d in documents[:-1]]
    assert events[0] == "state" and "weight" in events
