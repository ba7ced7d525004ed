"""Deploy pages that say what they cannot show, calmly and once: graphs without Prometheus, a registry
that cannot be reached; and what the design system adds to them: linked commits, durations, and
version drift in the environment matrix. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.deploys.drift import Cell, drift
from tests.deploys.helpers import (
    COMMITS,
    TEAM,
    Node,
    cells,
    parse_html,
    post,
    put_environments,
    report,
    reporter,
    shop,
)
from tests.helpers import Json, bearer, create_service
from tests.pg_cluster import free_port

REPO = "https://github.com/shop/checkout"
NOWHERE = "registry.nowhere.invalid"
"""A host that never resolves (RFC 6761): the registry's failure needs no network."""


def page(client: TestClient, url: str) -> Node:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return parse_html(response.text)


@pytest.fixture
def portal(settings: Settings, clock: FrozenClock) -> Iterator[FastAPI]:
    """The portal as `make run` starts it: no Prometheus configured."""
    app = create_app(settings, clock=clock)
    yield app
    app.state.runtime.close()


@pytest.fixture
def admin(portal: FastAPI, admin_token: str) -> Iterator[TestClient]:
    with TestClient(portal, headers=bearer(admin_token)) as client:
        yield client


@pytest.fixture
def ci(portal: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock) -> Iterator[TestClient]:
    with reporter(portal, sessions, clock) as client:
        yield client


# ---------------------------------------------------------------- the demo's deploys tab


def test_without_prometheus_the_tab_explains_once_how_to_connect_it(
    admin: TestClient, ci: TestClient
) -> None:
    shop(admin, image=None)
    post(ci, report("1.0.0", "production"))

    response = admin.get("/services/checkout/deploys")

    assert response.status_code == 200, response.text
    doc = parse_html(response.text)
    graphs = doc.by_id("graphs")
    assert graphs.by_id("graphs-empty").text() == (
        "Connect Prometheus to see graphs here. Set QD_PROMETHEUS_URL to your Prometheus server (for "
        "example http://prometheus:9090) and restart the portal: request rate, error ratio and latency "
        "p50/p99 then appear here, with every deploy marked on them."
    )
    # no per-panel error, nothing that would fetch graphs, no range picker
    assert "not configured" not in response.text
    assert (graphs.all(cls="panel-error"), graphs.find("panels"), graphs.all(cls="range-picker")) == (
        [],
        None,
        [],
    )
    assert "data-graphs" not in graphs.attrs
    assert "/static/graphs.js" not in response.text
    # the rest of the tab works
    assert cells(doc.by_id("live-versions").all("tr")[-1])[:2] == ["Production production", "1.0.0"]
    assert len(doc.by_id("deploy-history").all("tbody")[0].all("tr")) == 1


def test_with_prometheus_configured_the_tab_loads_the_graphs(
    settings: Settings, clock: FrozenClock, admin_token: str
) -> None:
    """Whether it answers is the graphs' business (their failures are said once, by graphs.js)."""
    app = create_app(
        settings.model_copy(update={"prometheus_url": f"http://127.0.0.1:{free_port()}"}), clock=clock
    )
    with TestClient(app, headers=bearer(admin_token)) as admin:
        shop(admin, image=None)

        doc = page(admin, "/services/checkout/deploys")

    graphs = doc.by_id("graphs")
    assert graphs.attrs["data-graphs"] == "/api/v1/services/checkout/graphs"
    assert (graphs.find("graphs-empty"), graphs.find("graphs-problems") is not None) == (None, True)
    app.state.runtime.close()


def test_a_registry_that_does_not_resolve_is_one_calm_line_naming_it(
    admin: TestClient, ci: TestClient
) -> None:
    shop(admin, image=f"{NOWHERE}/shop/checkout")
    post(ci, report("1.0.0", "production", image=f"{NOWHERE}/shop/checkout:1.0.0"))

    doc = page(admin, "/services/checkout/deploys")

    registry = doc.by_id("registry")
    [line] = registry.all("p")
    # "does not resolve", or where no DNS answers at all, "could not be looked up"
    assert line.text().startswith(f"The registry {NOWHERE} is not reachable from here: its host name ")
    assert "Errno" not in line.text() and "alert" not in line.classes
    assert line.attrs["id"] == "registry-message"
    # what runs is still shown; how far behind it is cannot be told
    production = doc.by_id("live-versions").all("tr")[-1]
    assert (cells(production)[1], cells(production)[-1]) == ("1.0.0", "—")
    live = admin.get("/api/v1/services/checkout/live").json()["registry"]
    assert (live["problem"], live["host"], live["error"]) == ("unreachable", NOWHERE, line.text())


# ---------------------------------------------------------------- commits and durations


def test_a_deploy_page_links_its_commit_and_says_how_long_it_took(admin: TestClient, ci: TestClient) -> None:
    shop(admin, image=None, links=[{"kind": "repo", "url": f"{REPO}.git"}])
    done = post(ci, report("1.0.0", "staging", started=60, finished=47))["deploy"]
    running = post(ci, report("1.1.0", "staging", status="running", started=3))["deploy"]

    doc = page(admin, done["url"])

    [sha] = doc.by_id("release-commit").all("a", cls="sha")
    assert (sha.attrs["href"], sha.text()) == (f"{REPO}/commit/{COMMITS['1.0.0']}", COMMITS["1.0.0"][:10])
    assert doc.by_id("deploy-duration").text() == "13 min"
    [started] = doc.by_id("deploy-started").all("time")
    assert (started.text(), started.attrs["title"]) == ("1 h ago", "2026-11-25 11:00:00 UTC")
    still = page(admin, running["url"])
    assert (still.by_id("deploy-duration").text(), still.by_id("deploy-finished").text()) == ("running", "—")
    # the history's rows have a duration column of their own
    history = page(admin, "/services/checkout/deploys").by_id("deploy-history")
    assert [cells(row)[-1] for row in history.all("tbody")[0].all("tr")] == ["running", "13 min"]


def test_a_commit_links_through_the_github_annotation_or_not_at_all(
    admin: TestClient, ci: TestClient
) -> None:
    put_environments(admin)
    admin.post("/api/v1/teams", json={"slug": TEAM, "name": "Shop"})
    create_service(admin, "cart", TEAM, tier=2, annotations={"github.com/project-slug": "shop/cart"})
    create_service(admin, "ledger", TEAM, tier=2)
    post(ci, [report("1.0.0", service="cart"), report("1.0.0", service="ledger")])

    feed = page(admin, "/deploys").by_id("feed")

    commits = {cells(row)[0]: row.all("td")[4] for row in feed.all("tbody")[0].all("tr")}
    [link] = commits["cart"].all("a", cls="sha")
    assert link.attrs["href"] == f"https://github.com/shop/cart/commit/{COMMITS['1.0.0']}"
    assert (commits["ledger"].all("a"), commits["ledger"].text()) == ([], COMMITS["1.0.0"][:10])


# ---------------------------------------------------------------- version drift


DRIFT_CASES: list[tuple[list[tuple[bool, str | None]], str | None, list[int]]] = [
    # every environment runs the same version: no drift
    ([(False, "1.0.0"), (True, "1.0.0"), (True, "1.0.0")], "1.0.0", []),
    # staging ahead of production drifts from it
    ([(False, "1.1.0"), (True, "1.0.0"), (True, "1.0.0")], "1.0.0", [0]),
    # the production environments disagree: the one most of them run wins
    ([(True, "2.0.0"), (True, "2.1.0"), (True, "2.1.0")], "2.1.0", [0]),
    # a tie among production environments: the first of them
    ([(False, "2.1.0"), (True, "2.0.0"), (True, "2.1.0")], "2.0.0", [0, 2]),
    # nothing in production: the version most environments run
    ([(False, "3.0.0"), (False, "3.1.0"), (False, "3.1.0"), (True, None)], "3.1.0", [0]),
    # an environment that runs nothing does not drift
    ([(False, None), (True, "1.0.0")], "1.0.0", []),
    # nothing deployed anywhere
    ([(False, None), (True, None)], None, []),
]


@pytest.mark.parametrize(("live", "reference", "drifting"), DRIFT_CASES)
def test_the_drift_rule(
    live: list[tuple[bool, str | None]], reference: str | None, drifting: list[int]
) -> None:
    found = drift([Cell(f"env{i}", production, version) for i, (production, version) in enumerate(live)])

    assert found == (reference, [f"env{i}" for i in drifting])


def test_the_matrix_marks_a_cell_whose_version_drifts(admin: TestClient, ci: TestClient) -> None:
    put_environments(admin, (("staging", "Staging", False), ("eu", "EU", True), ("us", "US", True)))
    admin.post("/api/v1/teams", json={"slug": TEAM, "name": "Shop"})
    for slug in ("cart", "checkout"):
        create_service(admin, slug, TEAM, tier=2)
    reports: list[Json] = [
        report("1.0.0", "eu"),
        report("1.0.0", "us"),
        report("1.1.0", "staging"),
        report("2.0.0", "eu", service="cart"),
        report("2.0.0", "us", service="cart"),
        report("2.0.0", "staging", service="cart"),
    ]
    post(ci, reports)

    doc = page(admin, "/environments")

    matrix = doc.by_id("matrix")
    rows = {row.attrs["data-service"]: row for row in matrix.all("tr") if "data-service" in row.attrs}
    marked = {
        slug: [cell.attrs["data-environment"] for cell in row.all("td") if "drift" in cell.classes]
        for slug, row in rows.items()
    }
    assert marked == {"cart": [], "checkout": ["staging"]}
    assert [b.text() for b in rows["checkout"].all(cls="drift-badge")] == ["drift"]
    assert rows["cart"].all(cls="drift-badge") == []
    [staging] = [c for c in rows["checkout"].all("td") if c.attrs.get("data-environment") == "staging"]
    assert staging.text() == "1.1.0 ≠ (differs from 1.0.0) 50 min ago"
    assert doc.by_id("drift-legend").text().startswith("≠ Drift: the cell runs another version")
    answer = admin.get("/api/v1/matrix").json()
    assert [(r["service"], r["reference"], r["drift"]) for r in answer["rows"]] == [
        ("cart", "2.0.0", []),
        ("checkout", "1.0.0", ["staging"]),
    ]
