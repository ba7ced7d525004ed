"""PrometheusClient and the default panels against a real Prometheus 2.42 scraping a test exporter.

The few answers a healthy Prometheus cannot be made to give (a proxy's HTML page, a 503) come from
httpx.MockTransport, shaped as the HTTP API documents them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from quarterdeck.errors import Invalid, Unavailable
from quarterdeck.integrations.prometheus import PrometheusClient, Series
from quarterdeck.observability.promql import DEFAULT_PANELS, rate_window, render
from tests.pg_cluster import free_port
from tests.prometheus_server import metrics_exporter, prometheus_server, wait_for_series

SERVICE = "checkout"
STEP = 1.0  # the test Prometheus scrapes every second


@dataclass(frozen=True)
class Live:
    url: str
    client: PrometheusClient


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One exporter and one Prometheus for the module, waited on until rate() has two samples (~7 s)."""
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    folder = tmp_path_factory.mktemp("prometheus")
    with (
        metrics_exporter(SERVICE) as target,
        prometheus_server(folder, [target]) as url,
        PrometheusClient(url) as client,
    ):
        wait_for_series(url, f'rate(http_requests_total{{service="{SERVICE}"}}[1m])')
        yield Live(url=url, client=client)


def panel_series(live: Live, key: str, end: datetime | None = None) -> list[Series]:
    """The panel for SERVICE over the last 30 s (the fixture guarantees data at the latest seconds only)."""
    [panel] = [p for p in DEFAULT_PANELS if p.key == key]
    promql = render(panel.query, {"service": SERVICE, "range": rate_window(STEP)})
    end = end or datetime.now(UTC)
    return live.client.query_range(promql, start=end - timedelta(seconds=30), end=end, step_seconds=STEP)


def values(series: list[Series]) -> list[float]:
    """The finite values of the single series a panel draws."""
    [only] = series
    assert only.points, "the series has no points"
    return [value for _, value in only.points if value is not None]


def test_request_rate_is_positive(live: Live) -> None:
    rates = values(panel_series(live, "request_rate"))

    assert rates
    assert all(rate > 0 for rate in rates)


def test_error_ratio_is_a_ratio(live: Live) -> None:
    ratios = values(panel_series(live, "error_ratio"))

    assert ratios
    assert all(0 < ratio < 1 for ratio in ratios)  # the exporter fails 2 requests in 52


def test_p99_is_at_least_p50(live: Live) -> None:
    end = datetime.now(UTC)  # one grid for both, so their points pair up
    [p50] = panel_series(live, "latency_p50", end)
    [p99] = panel_series(live, "latency_p99", end)

    p50_at = {at: value for at, value in p50.points if value is not None}
    both = [(p50_at[at], value) for at, value in p99.points if value is not None and at in p50_at]
    assert both
    assert all(0 < low <= high for low, high in both)


def test_range_points_are_on_the_step_grid(live: Live) -> None:
    end = datetime(2030, 1, 1, tzinfo=UTC)  # in the future: no data, still evaluated at each step

    [series] = live.client.query_range("vector(1)", start=end - timedelta(seconds=4), end=end, step_seconds=2)

    assert series.labels == {}
    assert series.points == [(end.timestamp() - 4, 1.0), (end.timestamp() - 2, 1.0), (end.timestamp(), 1.0)]


def test_instant_vector_has_one_point_per_series(live: Live) -> None:
    series = live.client.query(f'http_requests_total{{service="{SERVICE}"}}')

    assert sorted(s.labels["code"] for s in series) == ["200", "500"]
    for s in series:
        assert s.labels["service"] == SERVICE
        assert s.labels["__name__"] == "http_requests_total"
        [(_, value)] = s.points
        assert value is not None and value >= 0


def test_instant_query_at_a_given_time(live: Live) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)

    [series] = live.client.query("time()", at=at)

    assert series == Series(labels={}, points=[(at.timestamp(), at.timestamp())])


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        ("1 + 1", 2.0),  # a scalar: one series without labels
        ("0 / 0", None),  # NaN cannot travel in JSON
        ("1 / 0", None),  # +Inf neither
        ("-1 / 0", None),  # nor -Inf
    ],
)
def test_scalars_and_non_finite_values(live: Live, promql: str, expected: float | None) -> None:
    [series] = live.client.query(promql)

    assert series.labels == {}
    [(_, value)] = series.points
    assert value == expected


def test_hostile_label_value_stays_a_label_value(live: Live) -> None:
    [panel] = [p for p in DEFAULT_PANELS if p.key == "request_rate"]
    promql = render(panel.query, {"service": '"} or vector(1) #', "range": "1m"})

    # Parsed as one selector for a service of that odd name: no error and no injected vector(1).
    assert live.client.query(promql) == []


def test_bad_promql_is_invalid_with_prometheus_message(live: Live) -> None:
    promql = "sum(rate(http_requests_total[1m]"

    with pytest.raises(Invalid) as raised:
        live.client.query(promql)

    assert raised.value.code == "prometheus.bad_query"
    assert "parse error" in raised.value.message  # Prometheus's own words
    assert promql in raised.value.message
    assert raised.value.details["errorType"] == "bad_data"


def test_bad_range_parameters_are_invalid(live: Live) -> None:
    end = datetime.now(UTC)

    with pytest.raises(Invalid) as raised:
        live.client.query_range("vector(1)", start=end, end=end - timedelta(minutes=1), step_seconds=15)

    assert raised.value.code == "prometheus.bad_query"
    assert "end timestamp must not be before start time" in raised.value.message


def test_prometheus_down_is_unavailable() -> None:
    with PrometheusClient(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(Unavailable) as raised:
        client.query("up")

    assert raised.value.code == "prometheus.unreachable"


def mock_client(
    status: int, body: bytes | dict[str, Any], content_type: str = "application/json"
) -> PrometheusClient:
    content = json.dumps(body).encode() if isinstance(body, dict) else body

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"Content-Type": content_type})

    return PrometheusClient("http://prometheus.test", transport=httpx.MockTransport(answer))


SUCCESS_VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"job": "app"}, "value": [1700000000.5, "+Inf"]}]},
}


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        # an HTML page from something in front of Prometheus
        (200, b"<html><body>Sign in</body></html>", "text/html"),
        # JSON, but not the envelope
        (200, {"result": []}, "application/json"),
        # the envelope with a result type the API does not have
        (200, {"status": "success", "data": {"resultType": "table", "result": []}}, "application/json"),
        # a sample value that is not a string
        (
            200,
            {"status": "success", "data": {"resultType": "scalar", "result": [1700000000, 1]}},
            "application/json",
        ),
        # a truncated body
        (200, b'{"status":"success","data":{"resultType":"vec', "application/json"),
    ],
)
def test_undocumented_answer_is_unavailable_bad_answer(
    status: int, body: bytes | dict[str, Any], content_type: str
) -> None:
    with mock_client(status, body, content_type) as client, pytest.raises(Unavailable) as raised:
        client.query("up")

    assert raised.value.code == "prometheus.bad_answer"
    assert "up" in raised.value.message


@pytest.mark.parametrize(
    ("status", "error_type", "error"),
    [
        # the expression cannot be executed, e.g. too many samples
        (422, "execution", "query processing would load too many samples into memory in query execution"),
        # the query ran past its timeout
        (503, "timeout", "query timed out in expression evaluation"),
    ],
)
def test_execution_errors_are_unavailable(status: int, error_type: str, error: str) -> None:
    body = {"status": "error", "errorType": error_type, "error": error}

    with mock_client(status, body) as client, pytest.raises(Unavailable) as raised:
        client.query("up")

    assert raised.value.code == "prometheus.query_failed"
    assert error in raised.value.message


def test_non_json_gateway_error_is_unavailable() -> None:
    with mock_client(502, b"Bad Gateway", "text/plain") as client, pytest.raises(Unavailable) as raised:
        client.query("up")

    assert raised.value.code == "prometheus.upstream_error"


def test_mocked_vector_values_are_parsed() -> None:
    with mock_client(200, SUCCESS_VECTOR) as client:
        assert client.query("up") == [Series(labels={"job": "app"}, points=[(1700000000.5, None)])]
