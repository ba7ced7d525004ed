"""Rollout pages on SQLite and PostgreSQL: the Deploy form of a service's deploys tab starts a rollout
(or says in words why not, changing nothing), a rollout's page shows every step with its countdown,
analysis figures from a real Prometheus, and approvals, offers only the controls the rollout allows and
the viewer may use (CSRF-checked), and the event stream sends what happened after the Last-Event-ID,
keeps the connection alive and ends once the rollout is final. Time is a frozen clock moved past waits;
the worker runs due jobs in the test's thread. Drivers are the real `command` driver writing a call log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.deploys import rollout_views
from quarterdeck.deploys.rollouts.models import Rollout
from quarterdeck.runtime import Runtime
from tests.conftest import make_user, session_client
from tests.deploys.helpers import IMAGE, Node, parse_html, post, put_environments, recording_drivers, report
from tests.helpers import Json, create_service, create_team, wait_until_serving
from tests.pg_cluster import free_port
from tests.prometheus_server import metrics_exporter, prometheus_server, wait_for_series

SERVICE = "checkout"
ENVIRONMENTS = (("dev", "Dev", False), ("staging", "Staging", False), ("production", "Production", True))
ERROR_RATIO = (
    'sum(rate(http_requests_total{service="{service}",code="500"}[5s])) '
    '/ sum(rate(http_requests_total{service="{service}"}[5s]))'
)
DEPLOYER, SECOND, OUTSIDER = "dev@shop.example", "second@shop.example", "x@other.example"
WAITS: Json = {
    "name": "waits",
    "steps": [
        {"deploy": {"weight": 10}},
        {"wait": {"duration": "30s", "skippable": True}},
        {"deploy": {"weight": 100}},
    ],
}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping a small exporter for `checkout` (error ratio about 0.038)."""
    folder = tmp_path_factory.mktemp("prometheus")
    with metrics_exporter(SERVICE) as target, prometheus_server(folder, [target]) as url:
        wait_for_series(url, ERROR_RATIO.replace("{service}", SERVICE))
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The command driver records each call as `METHOD KEY WEIGHT` in calls.log."""
    drivers = recording_drivers(tmp_path / "drivers.yaml", tmp_path / "calls.log")
    prometheus_url = request.getfixturevalue("prometheus") if "prometheus" in request.fixturenames else None
    return Settings(
        database_url=db_url,
        git_cache_dir=tmp_path / "git",
        embedded_worker=False,
        deploy_drivers=drivers,
        deploy_state_dir=tmp_path / "state",
        prometheus_url=prometheus_url,
    )


class Shop:
    """Team shop and its tier-3 service checkout (1.0.0 live in staging, 1.1.0 in dev); two members of
    shop with browser sessions (the deployer and a second person) and someone of another team."""

    def __init__(self, client: TestClient, app: FastAPI, runtime: Runtime, clock: FrozenClock) -> None:
        self.admin, self.app, self.runtime, self.clock = client, app, runtime, clock
        put_environments(client, ENVIRONMENTS)
        create_team(client, "shop")
        create_team(client, "other")
        create_service(client, SERVICE, "shop", tier=3, image=IMAGE)
        post(client, report("1.0.0", "staging", service=SERVICE))
        post(client, report("1.1.0", "dev", service=SERVICE))
        for email, team in ((DEPLOYER, "shop"), (SECOND, "shop"), (OUTSIDER, "other")):
            make_user(runtime.sessions, clock, email, teams={team: "member"})
        self.worker = runtime.worker()

    @contextmanager
    def as_(self, email: str) -> Iterator[TestClient]:
        """A browser signed in as `email`, its CSRF token sent as a header, not following redirects."""
        with session_client(self.app, self.runtime.sessions, self.clock, email) as client:
            client.follow_redirects = False
            yield client

    def pipeline(self, body: Json, environment: str = "staging") -> None:
        response = self.admin.put(f"/api/v1/pipelines/service/{SERVICE}?environment={environment}", json=body)
        assert response.status_code in (200, 201), response.text

    def deploy(self, version: str = "1.1.0", environment: str = "staging", who: str = DEPLOYER) -> int:
        """Press Deploy as `who`; the rollout's id from where the form leads."""
        with self.as_(who) as client:
            response = client.post(
                f"/services/{SERVICE}/rollouts", data={"version": version, "environment": environment}
            )
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith("/rollouts/")
        return int(location.removeprefix("/rollouts/"))

    def page(self, rollout_id: int, who: str = DEPLOYER, query: str = "") -> Node:
        with self.as_(who) as client:
            response = client.get(f"/rollouts/{rollout_id}{query}")
        assert response.status_code == 200, response.text
        return parse_html(response.text)

    def run(self, seconds: float = 0) -> int:
        self.clock.at += timedelta(seconds=seconds)
        return self.worker.run_due()

    def get(self, rollout_id: int) -> Json:
        answer: Json = self.admin.get(f"/api/v1/rollouts/{rollout_id}").json()
        return answer

    def event_ids(self, rollout_id: int) -> list[int]:
        answer = self.admin.get(f"/api/v1/rollouts/{rollout_id}/events").json()
        return [event["id"] for event in answer["events"]]


@pytest.fixture
def shop(client: TestClient, app_under_test: FastAPI, runtime: Runtime, clock: FrozenClock) -> Shop:
    return Shop(client, app_under_test, runtime, clock)


def rollout_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Rollout)) or 0


def controls_of(page: Node) -> list[str]:
    return [button.attrs["data-control"] for button in page.all("button") if "data-control" in button.attrs]


def step(page: Node, number: int) -> Node:
    return page.by_id(f"step-{number}")


# ---------------------------------------------------------------- the Deploy form


def test_the_deploy_form_offers_known_releases_and_starts_a_rollout(shop: Shop) -> None:
    with shop.as_(DEPLOYER) as client:
        tab = client.get(f"/services/{SERVICE}/deploys")
        panel = client.get(f"/services/{SERVICE}/rollouts", headers={"HX-Request": "true"})
    assert tab.status_code == 200 and panel.status_code == 200
    holder = parse_html(tab.text).by_id("deploy-panel")
    assert holder.attrs["hx-get"] == f"/services/{SERVICE}/rollouts" and holder.attrs["hx-trigger"] == "load"
    assert "<html" not in panel.text  # the fragment the tab loads
    form = parse_html(panel.text).by_id("deploy-form")
    offered = [option.attrs["value"] for option in form.by_id("deploy-versions").all("option")]
    assert offered == ["1.1.0", "1.0.0"]  # newest first (no registry answers here)
    assert form.by_id("deploy-version").attrs["value"] == "1.1.0"
    environments = [option.attrs["value"] for option in form.by_id("deploy-environment").all("option")]
    assert environments == ["dev", "staging", "production"]
    assert form.by_id("deploy-queue").attrs["type"] == "checkbox"

    shop.pipeline(WAITS)
    rollout_id = shop.deploy()
    assert shop.get(rollout_id)["state"] == "running"
    with shop.as_(DEPLOYER) as client:
        listed = parse_html(client.get(f"/services/{SERVICE}/rollouts").text).by_id("rollouts")
        htmx = client.post(
            f"/services/{SERVICE}/rollouts",
            data={"version": "1.0.0", "environment": "dev"},
            headers={"HX-Request": "true"},
        )
    [row] = listed.all("tr")[1:]
    assert row.attrs["data-rollout-id"] == str(rollout_id) and "running" in row.text()
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/rollouts/")


def test_refusals_are_said_in_words_on_the_form_and_change_nothing(shop: Shop) -> None:
    shop.pipeline(WAITS)
    running = shop.deploy()
    before = rollout_count(shop.runtime.sessions)
    with shop.as_(DEPLOYER) as client:
        unknown = client.post(
            f"/services/{SERVICE}/rollouts", data={"version": "1.1.1", "environment": "dev"}
        )
        busy = client.post(
            f"/services/{SERVICE}/rollouts", data={"version": "1.0.0", "environment": "staging"}
        )
    assert unknown.status_code == 404
    error = parse_html(unknown.text).by_id("deploy-error").text()
    assert error.startswith("checkout has no release '1.1.1'; did you mean '1.1.0'")
    assert parse_html(unknown.text).by_id("deploy-version").attrs["value"] == "1.1.1"  # kept to correct

    assert busy.status_code == 409
    page = parse_html(busy.text)
    assert f"rollout {running} of checkout in staging is running" in page.by_id("deploy-error").text()
    assert page.by_id("deploy-error-link").attrs["href"] == f"/rollouts/{running}"

    freeze = {
        "starts_at": (shop.clock.now() - timedelta(minutes=1)).isoformat(),
        "ends_at": (shop.clock.now() + timedelta(hours=1)).isoformat(),
        "reason": "sale weekend",
    }
    assert shop.admin.post("/api/v1/environments/production/freezes", json=freeze).status_code == 201
    with shop.as_(DEPLOYER) as client:
        frozen = client.post(
            f"/services/{SERVICE}/rollouts", data={"version": "1.1.0", "environment": "production"}
        )
    assert frozen.status_code == 409
    assert "deploys are refused" in parse_html(frozen.text).by_id("deploy-error").text()

    with shop.as_(OUTSIDER) as client:
        panel = parse_html(client.get(f"/services/{SERVICE}/rollouts").text)
        refused = client.post(
            f"/services/{SERVICE}/rollouts", data={"version": "1.1.0", "environment": "dev"}
        )
    assert panel.find("deploy-form") is None
    assert panel.by_id("deploy-not-allowed").text() == "Only members of team shop can deploy it."
    assert refused.status_code == 403
    assert "only members of team 'shop'" in parse_html(refused.text).by_id("deploy-error").text()
    assert rollout_count(shop.runtime.sessions) == before


def test_the_deploy_form_is_csrf_checked(shop: Shop) -> None:
    shop.pipeline(WAITS)
    with shop.as_(DEPLOYER) as client:
        del client.headers["X-CSRF-Token"]
        response = client.post(
            f"/services/{SERVICE}/rollouts", data={"version": "1.1.0", "environment": "dev"}
        )
    assert response.status_code == 403 and "CSRF" in response.text
    assert rollout_count(shop.runtime.sessions) == 0


# ---------------------------------------------------------------- a rollout's page


def test_the_page_shows_steps_traffic_countdown_and_analysis_figures(prometheus: str, shop: Shop) -> None:
    shop.pipeline(
        {
            "name": "canary-test",
            "steps": [
                {"deploy": {"weight": 10}},
                {"wait": {"duration": "30s"}},
                {
                    "analysis": {
                        "interval": "10s",
                        "count": 2,
                        "queries": {"error-rate": {"query": ERROR_RATIO, "condition": "< 0.05"}},
                    }
                },
                {"deploy": {"weight": 100}},
            ],
        }
    )
    rollout_id = shop.deploy()
    shop.run()
    page = shop.page(rollout_id)
    head = page.all("h1")[0].text()
    assert "1.1.0" in head and "1.0.0" in head and "staging" in head
    assert page.by_id("rollout-started-by").text() == DEPLOYER
    live = page.by_id("rollout-live")
    assert (
        live.attrs["data-stream"]
        == f"/rollouts/{rollout_id}/stream?after={shop.get(rollout_id)['last_event_id']}"
    )
    assert page.by_id("rollout-steps").attrs["aria-live"] == "polite"
    assert [step(page, n).attrs["data-state"] for n in (1, 2, 3, 4)] == [
        "succeeded",
        "waiting",
        "pending",
        "pending",
    ]
    assert "Canary traffic: 10 %" in step(page, 1).text()
    [countdown] = step(page, 2).all(cls="countdown-value")
    assert countdown.attrs["data-seconds-left"] == "30" and countdown.text() == "30 s"
    assert countdown.attrs["data-due-at"] == (shop.clock.now() + timedelta(seconds=30)).isoformat()
    assert step(page, 2).attrs.get("aria-current") == "step"
    assert len(step(page, 1).all("svg")) == 1  # its active/waiting bar

    shop.run(30)
    shop.run(10)  # the first measurement
    fragment = shop.page(rollout_id, query="?fragment=steps")
    assert fragment.find("rollout-meta") is None  # only the live part
    [row] = fragment.by_id("analysis-3").all("tr")[1:]
    number, query, value, baseline, limit, verdict = [cell.text() for cell in row.all("td")]
    assert (number, baseline, limit, verdict) == ("1", "—", "0.05", "pass")
    assert query.startswith("error-rate") and 0.03 < float(value) < 0.045
    assert "Measured 1 of 2 times" in step(fragment, 3).text()
    assert "Waiting 40 s" in fragment.by_id("rollout-time").text()  # the wait, and the analysis so far


def test_an_approval_shows_who_must_approve_and_the_second_person_decides_on_the_page(shop: Shop) -> None:
    shop.pipeline(
        {
            "name": "approved",
            "steps": [
                {"approval": {"who": {"team_role": "member"}, "two_person": True}},
                {"deploy": {"weight": 100}},
            ],
        }
    )
    rollout_id = shop.deploy()
    shop.run()
    shop.run(90)
    mine = shop.page(rollout_id)
    approval = mine.by_id("approval-1")
    assert (
        "Waiting for a member of team shop (a second person, not the deployer) to approve" in approval.text()
    )
    [waited] = approval.all(cls="approval-waiting")
    assert (waited.attrs["data-count-up"], waited.text()) == ("90", "1 min")
    request_id = shop.get(rollout_id)["steps"][0]["approval"]["request_id"]
    assert approval.all("a")[0].attrs["href"] == f"/approvals?status=#approval-{request_id}"
    assert controls_of(mine) == ["pause", "abort"]  # the deployer may not approve their own deploy

    second = shop.page(rollout_id, who=SECOND)
    assert controls_of(second) == ["pause", "abort", "approve", "reject"]
    with shop.as_(SECOND) as client:
        response = client.post(f"/rollouts/{rollout_id}/approve")
    assert (response.status_code, response.headers["location"]) == (303, f"/rollouts/{rollout_id}")
    shop.run()
    done = shop.page(rollout_id)
    assert done.by_id("rollout-state").attrs["data-state"] == "succeeded"
    assert controls_of(done) == [] and done.find("controls-not-allowed") is None
    assert "approved by second@shop.example" in done.by_id("approval-1").text()


def test_controls_are_offered_when_allowed_and_permitted_and_are_csrf_checked(shop: Shop) -> None:
    shop.pipeline(WAITS)
    rollout_id = shop.deploy()
    shop.run()
    assert controls_of(shop.page(rollout_id)) == ["pause", "skip", "promote", "abort"]
    outsider = shop.page(rollout_id, who=OUTSIDER)
    assert controls_of(outsider) == []
    assert outsider.by_id("controls-not-allowed").text() == "Only members of team shop can deploy it."

    with shop.as_(DEPLOYER) as client:
        del client.headers["X-CSRF-Token"]
        forged = client.post(f"/rollouts/{rollout_id}/abort")
    assert forged.status_code == 403 and shop.get(rollout_id)["state"] == "running"
    with shop.as_(OUTSIDER) as client:
        assert client.post(f"/rollouts/{rollout_id}/pause").status_code == 403

    with shop.as_(DEPLOYER) as client:
        paused = client.post(f"/rollouts/{rollout_id}/pause", headers={"HX-Request": "true"})
        again = client.post(f"/rollouts/{rollout_id}/pause", headers={"HX-Request": "true"})
    assert paused.status_code == 200  # the live part, for htmx to put in place
    fragment = parse_html(paused.text)
    assert fragment.by_id("rollout-state").attrs["data-state"] == "paused"
    assert fragment.by_id("rollout-reason").text() == f"Paused by {DEPLOYER}."
    assert controls_of(fragment) == ["resume", "skip", "promote", "abort"]
    [countdown] = step(fragment, 2).all(cls="countdown-value")
    assert "data-seconds-left" not in countdown.attrs  # no ticking while paused
    assert again.status_code == 409 and "only a running rollout can be paused" in again.text

    with shop.as_(DEPLOYER) as client:
        resumed = client.post(f"/rollouts/{rollout_id}/resume")
        client.post(f"/rollouts/{rollout_id}/skip")
    assert resumed.status_code == 303
    shop.run()
    assert shop.get(rollout_id)["state"] == "succeeded"
    deploy_id = shop.get(rollout_id)["deploy_id"]
    with shop.as_(DEPLOYER) as client:
        deploy_page = parse_html(client.get(f"/deploys/{deploy_id}").text)
    assert deploy_page.by_id("rollout-link").attrs["href"] == f"/rollouts/{rollout_id}"


# ---------------------------------------------------------------- the event stream


def parse_stream(text: str) -> list[dict[str, str]]:
    """The events of a text/event-stream body (comments left out)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if fields:
            events.append(fields)
    return events


def test_the_stream_sends_the_events_after_last_event_id_then_ends_on_a_final_rollout(shop: Shop) -> None:
    shop.pipeline(WAITS)
    rollout_id = shop.deploy()
    shop.run()
    with shop.as_(DEPLOYER) as client:
        client.post(f"/rollouts/{rollout_id}/promote")
    shop.run()
    ids = shop.event_ids(rollout_id)
    assert shop.get(rollout_id)["final"] is True and len(ids) > 3

    with shop.as_(DEPLOYER) as client:
        resumed = client.get(f"/rollouts/{rollout_id}/stream", headers={"Last-Event-ID": str(ids[-3])})
        by_query = client.get(f"/rollouts/{rollout_id}/stream?after={ids[-2]}")
        missing = client.get("/rollouts/999999/stream")
    assert resumed.status_code == 200
    assert resumed.headers["content-type"].startswith("text/event-stream")
    events = parse_stream(resumed.text)
    assert [(e["event"], int(e["id"])) for e in events] == [
        ("change", ids[-2]),
        ("change", ids[-1]),
        ("end", ids[-1]),
    ]
    assert events[0]["retry"] == str(rollout_views.STREAM_RETRY_MS)
    last = json.loads(events[1]["data"])
    assert last["state"] == "succeeded" and last["type"] in ("state", "step")
    assert json.loads(events[2]["data"]) == {"state": "succeeded", "final": True}
    assert [e["event"] for e in parse_stream(by_query.text)] == ["change", "end"]
    assert missing.status_code == 404


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app over HTTP on a free port (uvicorn in a thread), for a stream read as it comes."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, timeout=20)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_live_stream_follows_the_rollout_keeps_alive_and_ends(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollout_views, "STREAM_PING_SECONDS", 0.3)
    shop.pipeline(WAITS)
    rollout_id = shop.deploy()
    start = shop.get(rollout_id)["last_event_id"]
    with shop.as_(DEPLOYER) as signed_in:
        cookies, csrf = dict(signed_in.cookies), signed_in.headers["X-CSRF-Token"]
    events: list[dict[str, str]] = []
    comments: list[str] = []
    with (
        served(shop.app) as base,
        httpx.Client(base_url=base, cookies=cookies, timeout=20) as http,
        http.stream("GET", f"/rollouts/{rollout_id}/stream?after={start}") as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()

        def next_item() -> str:
            """Read up to the next comment or event: "comment" or the event's name."""
            block: dict[str, str] = {}
            for line in lines:
                if line.startswith(":"):
                    comments.append(line)
                    return "comment"
                if line == "" and block:
                    events.append(block)
                    return block["event"]
                if line:
                    name, _, value = line.partition(":")
                    block[name] = value.removeprefix(" ")
            raise AssertionError("the stream ended early")

        shop.run()  # deploy 10 %, then the wait: events arrive while the stream is open
        while next_item() != "change":
            pass
        assert int(events[0]["id"]) > start
        while next_item() != "comment":  # then nothing happens for a while: a keep-alive comes
            pass
        control = http.post(f"/rollouts/{rollout_id}/promote", headers={"X-CSRF-Token": csrf})
        assert control.status_code == 303
        shop.run()
        while next_item() != "end":
            pass
        assert list(lines) == []  # ended by the server
    ids = [int(e["id"]) for e in events if e["event"] == "change"]
    assert ids == shop.event_ids(rollout_id)[-len(ids) :] and ids == sorted(set(ids))
    assert comments[0].startswith(": ping")
