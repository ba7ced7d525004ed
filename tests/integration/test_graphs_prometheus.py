"""A service's graphs (GET /api/v1/services/{slug}/graphs) from a real Prometheus 2.42 scraping a test
exporter for `checkout`, the panels a team adds, and what the API says when Prometheus is down or unset.

One exporter and one Prometheus for the module (its first sample takes ~6 s); each test gets its own
database (SQLite and PostgreSQL) and its own app. The app runs on the system clock: Prometheus holds
samples of now, not of the frozen clock's day.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock, SystemClock
from quarterdeck.config import Settings
from tests.conftest import make_token, make_user
from tests.deploys.helpers import SERVICE, parse_html, shop
from tests.helpers import Json, bearer, error_of
from tests.pg_cluster import free_port
from tests.prometheus_server import metrics_exporter, prometheus_server, wait_for_series

DEFAULT_PANELS = ["request_rate", "error_ratio", "latency_p50", "latency_p99"]
FAILURES = 'sum(rate(http_requests_total{service="{{service}}",code="500"}[{{range}}]))'


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the exporter every second, waited on until rate() has two samples; its URL."""
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    with (
        metrics_exporter(SERVICE) as target,
        prometheus_server(tmp_path_factory.mktemp("prometheus"), [target]) as url,
    ):
        wait_for_series(url, f'rate(http_requests_total{{service="{SERVICE}"}}[1m])')
        yield url


@contextmanager
def portal(settings: Settings, admin_token: str, prometheus_url: str | None) -> Iterator[TestClient]:
    """An admin's client of the portal with this Prometheus (or none), and team shop's checkout."""
    app = create_app(settings.model_copy(update={"prometheus_url": prometheus_url}), clock=SystemClock())
    with TestClient(app, headers=bearer(admin_token)) as client:
        shop(client, image=None)
        yield client
    app.state.runtime.close()


@pytest.fixture
def admin(settings: Settings, admin_token: str, prometheus: str) -> Iterator[TestClient]:
    with portal(settings, admin_token, prometheus) as client:
        yield client


def graphs(client: TestClient, query: str = "?range=15m") -> Json:
    response = client.get(f"/api/v1/services/{SERVICE}/graphs{query}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def values(panel: Json) -> dict[float, float]:
    """Time -> value of the single series a panel draws (points without a value left out)."""
    [series] = panel["series"]
    return {at: value for at, value in series["points"] if value is not None}


# ---------------------------------------------------------------- with Prometheus


def test_the_default_panels_draw_real_traffic(admin: TestClient) -> None:
    body = graphs(admin)

    assert (body["service"], body["range"], body["step_seconds"], body["error"]) == (
        SERVICE,
        "15m",
        15.0,
        None,
    )
    panels = {p["key"]: p for p in body["panels"]}
    assert list(panels) == DEFAULT_PANELS
    for panel in body["panels"]:
        assert (panel["custom"], panel["error"]) == (False, None), panel["key"]
        assert f'service="{SERVICE}"' in panel["query"] and "[1m]" in panel["query"], panel["key"]
        assert values(panel), panel["key"]
    assert panels["request_rate"]["query"] == f'sum(rate(http_requests_total{{service="{SERVICE}"}}[1m]))'
    assert all(rate > 0 for rate in values(panels["request_rate"]).values())
    # the exporter fails 2 requests in 52
    assert all(0 < ratio < 1 for ratio in values(panels["error_ratio"]).values())
    p50, p99 = values(panels["latency_p50"]), values(panels["latency_p99"])
    both = [(p50[at], p99[at]) for at in p99 if at in p50]
    assert both
    assert all(0 < low <= high for low, high in both)
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert end - start == timedelta(minutes=15)
    # Prometheus keeps times to the millisecond: the point at `end` may come back rounded up
    assert all(round(start.timestamp(), 3) <= at <= round(end.timestamp(), 3) for at in p99)


def test_a_team_panel_is_drawn_with_the_service_label(
    admin: TestClient, settings: Settings, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "alice@example.com", teams={"shop": "member"})
    make_user(sessions, clock, "pat@example.com", teams={"payments": "member"})
    alice = bearer(
        make_token(sessions, clock, user="alice@example.com", scopes=["write:catalog"], name="alice")
    )
    pat = bearer(make_token(sessions, clock, user="pat@example.com", scopes=["write:catalog"], name="pat"))
    panel = {"key": "failures", "title": "Failures", "unit": "req/s", "query": FAILURES}
    url = f"/api/v1/services/{SERVICE}/panels"

    added = admin.post(url, json=panel, headers=alice)

    assert added.status_code == 201, added.text
    assert added.json() == {**panel, "custom": True, "series": [], "error": None}
    drawn = graphs(admin)["panels"]
    assert [p["key"] for p in drawn] == [*DEFAULT_PANELS, "failures"]
    own = drawn[-1]
    assert (own["custom"], own["error"], own["query"]) == (
        True,
        None,
        f'sum(rate(http_requests_total{{service="{SERVICE}",code="500"}}[1m]))',
    )
    assert values(own) and all(rate > 0 for rate in values(own).values())

    refusals: list[tuple[Json, dict[str, str], int, str]] = [
        # a placeholder the portal does not fill
        (
            {**panel, "key": "by-team", "query": 'up{team="{{team}}"}'},
            alice,
            422,
            "observability.unknown_placeholder",
        ),
        # a label value outside quotes could add PromQL of its own
        (
            {**panel, "key": "bare", "query": "up{service={{service}}}"},
            alice,
            422,
            "observability.unquoted_placeholder",
        ),
        # the key is taken by the team's own panel
        (panel, alice, 409, "observability.duplicate_panel"),
        # ... or by a default panel
        ({**panel, "key": "request_rate"}, alice, 409, "observability.duplicate_panel"),
        # someone of another team
        ({**panel, "key": "theirs"}, pat, 403, "access.forbidden"),
    ]
    for body, who, status, code in refusals:
        error_of(admin.post(url, json=body, headers=who), status, code)
    assert [p["key"] for p in graphs(admin)["panels"]] == [*DEFAULT_PANELS, "failures"]

    removed = admin.delete(f"{url}/failures", headers=alice)

    assert removed.status_code == 204, removed.text
    assert [p["key"] for p in graphs(admin)["panels"]] == DEFAULT_PANELS
    error_of(admin.delete(f"{url}/failures", headers=alice), 404, "observability.unknown_panel")


def test_a_panel_prometheus_cannot_parse_fails_alone(admin: TestClient) -> None:
    # placeholders are checked when the panel is saved; PromQL itself only Prometheus can judge
    broken = {"key": "broken", "title": "Broken", "query": 'sum(rate(up{service="{{service}}"}[{{range}}])'}
    assert admin.post(f"/api/v1/services/{SERVICE}/panels", json=broken).status_code == 201

    body = graphs(admin)

    assert body["error"] is None
    *defaults, own = body["panels"]
    assert [(p["key"], p["error"], bool(values(p))) for p in defaults] == [
        (key, None, True) for key in DEFAULT_PANELS
    ]
    assert (own["key"], own["series"]) == ("broken", [])
    assert own["error"] == (
        """Prometheus rejected the query 'sum(rate(up{service="checkout"}[1m])': """
        "1:37: parse error: unclosed left parenthesis"
    )


BAD_GRAPH_QUERIES: list[tuple[str, int, str]] = [
    # a range the page does not offer
    ("?range=2h", 422, "observability.bad_range"),
    # not a range at all
    ("?range=banana", 422, "observability.bad_range"),
    # longer than any range
    ("?range=" + "1" * 11, 422, "request.invalid"),
]


def test_bad_graph_requests_are_refused(admin: TestClient) -> None:
    for query, status, code in BAD_GRAPH_QUERIES:
        error_of(admin.get(f"/api/v1/services/{SERVICE}/graphs{query}"), status, code)
    error_of(admin.get("/api/v1/services/nope/graphs"), 404, "catalog.service_not_found")


# ---------------------------------------------------------------- without Prometheus


def test_prometheus_down_is_said_on_every_panel_and_the_page_still_renders(
    settings: Settings, admin_token: str
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with portal(settings, admin_token, nowhere) as client:
        body = graphs(client, "?range=1h")

        assert body["error"] is not None
        assert body["error"].startswith("Prometheus is unavailable: ")
        assert [(p["key"], p["error"], p["series"]) for p in body["panels"]] == [
            (key, body["error"], []) for key in DEFAULT_PANELS
        ]
        page = client.get(f"/services/{SERVICE}/deploys")
        assert page.status_code == 200, page.text
        assert (
            parse_html(page.text).by_id("graphs").attrs["data-graphs"] == f"/api/v1/services/{SERVICE}/graphs"
        )


def test_no_prometheus_configured_is_said_plainly(settings: Settings, admin_token: str) -> None:
    with portal(settings, admin_token, None) as client:
        body = graphs(client)

    message = "Prometheus is not configured (QD_PROMETHEUS_URL)"
    assert body["error"] == message
    assert [(p["key"], p["error"], p["series"]) for p in body["panels"]] == [
        (key, message, []) for key in DEFAULT_PANELS
    ]
