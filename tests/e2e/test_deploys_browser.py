"""The deploys tab in Chromium: live versions, history, and the service's graphs drawn from a real
Prometheus with the deploys marked, on both databases."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from quarterdeck.access.schemas import Actor
from quarterdeck.db import transaction
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from tests.e2e.conftest import AppSettings, LiveApp
from tests.prometheus_server import metrics_exporter, prometheus_server, wait_for_series

SERVICE = "checkout-api"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with (
        metrics_exporter(SERVICE) as target,
        prometheus_server(tmp_path_factory.mktemp("prom"), [target]) as url,
    ):
        wait_for_series(url, f'http_requests_total{{service="{SERVICE}"}}')
        yield url


@pytest.fixture(scope="module")
def app_settings(prometheus: str) -> AppSettings:
    links = {"Logs": "https://logs.example/search?service={service}&from={from_ms}&to={to_ms}"}
    return lambda base_url: {"prometheus_url": prometheus, "link_templates": links}


@pytest.fixture(scope="module")
def history(live_app: LiveApp) -> list[str]:
    """Staging and production, three deploys in the last ten minutes: versions, oldest first."""
    now = datetime.now(UTC)
    system = Actor.system("e2e")
    with transaction(live_app.sessions) as session:
        for position, (slug, production) in enumerate([("staging", False), ("production", True)]):
            deploys.put_environment(
                session,
                system,
                slug,
                EnvironmentIn(name=slug.title(), position=position, production=production),
                at=now,
            )
        plan = [
            ("staging", "3.0.0", "succeeded", 9),
            ("production", "3.0.0", "succeeded", 6),
            ("staging", "3.1.0", "failed", 3),
        ]
        for env, version, status, minutes in plan:
            started = now - timedelta(minutes=minutes)
            report = DeployReport(
                id=f"e2e:{env}:{version}",
                service=SERVICE,
                environment=env,
                version=version,
                status=status,
                started_at=started,
                finished_at=started + timedelta(minutes=1),
            )
            deploys.report(session, system, [report], at=now)
    return [version for _env, version, _s, _m in plan]


def test_deploys_tab_shows_live_versions_history_and_graphs(
    page: Page, live_app: LiveApp, history: list[str]
) -> None:
    page.goto(f"{live_app.url}/services/{SERVICE}")
    page.locator("#deploys-tab").click()

    expect(page).to_have_url(re.compile(rf"/services/{SERVICE}/deploys$"))
    expect(page.locator('#live-versions tr[data-environment="staging"] .live-version')).to_have_text("3.0.0")
    expect(page.locator('#live-versions tr[data-environment="production"] .live-version')).to_have_text(
        "3.0.0"
    )
    expect(page.locator("#deploy-history tbody tr")).to_have_count(3)
    expect(page.locator("#deploy-history tbody tr").first).to_contain_text("failed")
    expect(page.locator("#graphs .panel canvas")).to_have_count(4, timeout=20_000)
    titles = page.locator("#graphs .panel h3").all_inner_texts()
    assert titles == [
        "Request rate (req/s)",
        "Error ratio (5xx) (ratio)",
        "Latency p50 (seconds)",
        "Latency p99 (seconds)",
    ]
    expect(page.locator("#graphs-status")).to_have_text("3 deploys in the last 6h.")
    assert page.locator("#graphs .panel-error").count() == 0
    logs = page.locator("#graphs a.log-link").get_attribute("href") or ""
    assert logs.startswith(f"https://logs.example/search?service={SERVICE}&from=")


def test_range_picker_reloads_the_graphs(page: Page, live_app: LiveApp, history: list[str]) -> None:
    page.goto(f"{live_app.url}/services/{SERVICE}/deploys")
    expect(page.locator("#graphs")).to_have_attribute("data-loaded", "6h", timeout=20_000)

    page.locator('#graphs [data-range="15m"]').click()

    expect(page.locator("#graphs")).to_have_attribute("data-loaded", "15m", timeout=20_000)
    expect(page.locator("#graphs-status")).to_have_text("3 deploys in the last 15m.")
    expect(page.locator("#graphs .panel canvas")).to_have_count(4)


def test_a_deploy_row_opens_its_detail_with_what_changed(
    page: Page, live_app: LiveApp, history: list[str]
) -> None:
    page.goto(f"{live_app.url}/services/{SERVICE}/deploys?environment=production")
    page.locator("#deploy-history tbody tr a").first.click()

    expect(page.locator("h1")).to_contain_text("3.0.0")
    expect(page.locator("#changes")).to_contain_text("Nothing was live in production before this deploy.")


def test_graphs_say_when_the_graphs_answer_fails(page: Page, live_app: LiveApp, history: list[str]) -> None:
    """The page's own error path (the server's Prometheus-down answer is tested over the API)."""
    page.route(
        "**/api/v1/services/*/graphs*",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": {"code": "x", "message": "down for the test", "details": null}}',
        ),
    )
    page.goto(f"{live_app.url}/services/{SERVICE}/deploys")

    expect(page.locator("#graphs-status")).to_have_text("Graphs could not be loaded: down for the test")


def _with_graphs(page: Page, change: Callable[[dict[str, Any]], None]) -> None:
    """Answer the page's graphs request with the real answer, changed by `change`."""

    def handle(route: Route) -> None:
        body = route.fetch().json()
        change(body)
        route.fulfill(json=body)

    page.route("**/api/v1/services/*/graphs*", handle)


def test_prometheus_down_is_said_once_naming_the_graphs(
    page: Page, live_app: LiveApp, history: list[str]
) -> None:
    def down(body: dict[str, Any]) -> None:
        body["error"] = (
            "Prometheus is unavailable: prometheus cannot be reached: its host name does not resolve"
        )
        for panel in body["panels"]:
            panel["error"], panel["series"] = body["error"], []

    _with_graphs(page, down)
    page.goto(f"{live_app.url}/services/{SERVICE}/deploys")

    expect(page.locator("#graphs-status")).to_have_text(
        "Prometheus is unavailable: prometheus cannot be reached: its host name does not resolve. "
        "Not drawn: Request rate, Error ratio (5xx), Latency p50, Latency p99."
    )
    expect(page.locator("#graphs .panel")).to_have_count(0)
    assert page.locator("#graphs .panel-error").count() == 0


def test_a_graph_that_fails_is_named_once_and_the_others_are_drawn(
    page: Page, live_app: LiveApp, history: list[str]
) -> None:
    def one_fails(body: dict[str, Any]) -> None:
        body["panels"][1]["error"], body["panels"][1]["series"] = "bad_data: parse error at char 4", []

    _with_graphs(page, one_fails)
    page.goto(f"{live_app.url}/services/{SERVICE}/deploys")

    expect(page.locator("#graphs-problems li")).to_have_text(
        ["Error ratio (5xx): bad_data: parse error at char 4"]
    )
    expect(page.locator("#graphs .panel canvas")).to_have_count(3, timeout=20_000)
    expect(page.locator("#graphs-status")).to_have_text("3 deploys in the last 6h.")


def test_the_deploys_tab_and_its_graphs_fit_a_phone(
    phone: Page, live_app: LiveApp, history: list[str]
) -> None:
    phone.goto(f"{live_app.url}/services/{SERVICE}/deploys")
    expect(phone.locator("#graphs .panel canvas")).to_have_count(4, timeout=20_000)

    overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")

    assert overflow == 0
