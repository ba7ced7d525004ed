"""Adapter for the Prometheus HTTP API (/api/v1/query and /api/v1/query_range) returning plain series.

Answers follow https://prometheus.io/docs/prometheus/latest/querying/api/: an envelope
`{"status": "success"|"error", "data": ..., "errorType": ..., "error": ...}`, sample values as strings
("1.5", "NaN", "+Inf"), timestamps as unix seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from quarterdeck.errors import Invalid, Unavailable
from quarterdeck.integrations.http import check_status, make_client, mapped_errors

__all__ = ["PrometheusClient", "Series"]

SYSTEM = "prometheus"


@dataclass(frozen=True)
class Series:
    """One time series: its labels and (unix seconds, value) points; NaN and ±Inf become None for JSON."""

    labels: dict[str, str]
    points: list[tuple[float, float | None]]


class _BadAnswer(Exception):
    """The body is not what the API documents; the message says what was off."""


class PrometheusClient:
    """Runs PromQL against one Prometheus server. Close it, or use it as a context manager."""

    def __init__(
        self, base_url: str, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self._client = make_client(
            base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            transport=transport,
        )

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_seconds: float
    ) -> list[Series]:
        """Evaluate `promql` at start, start + step, ... up to end (a "matrix")."""
        params = {
            "query": promql,
            "start": _unix(start, "start"),
            "end": _unix(end, "end"),
            "step": repr(float(step_seconds)),
        }
        return self._call("/api/v1/query_range", promql, params, accept={"matrix"})

    def query(self, promql: str, *, at: datetime | None = None) -> list[Series]:
        """Evaluate `promql` at one instant (now by default): one point per series; a scalar has no labels."""
        params = {"query": promql}
        if at is not None:
            params["time"] = _unix(at, "at")
        return self._call("/api/v1/query", promql, params, accept={"vector", "scalar", "matrix"})

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, path: str, promql: str, params: dict[str, str], *, accept: set[str]) -> list[Series]:
        # Prometheus's own deadline matches ours, so it stops evaluating a query nobody waits for.
        # POST with a form body: long queries would otherwise hit URL length limits (documented).
        form = {**params, "timeout": repr(float(self.timeout))}
        with mapped_errors(SYSTEM):
            response = self._client.post(path, data=form)
        body = _json_or_none(response)
        if isinstance(body, dict) and body.get("status") == "error":
            _raise_api_error(body, response.status_code, promql)
        check_status(SYSTEM, response, f"endpoint {path}")
        try:
            if not isinstance(body, dict) or body.get("status") != "success":
                raise _BadAnswer("not a JSON object with status success")
            return _parse_data(body.get("data"), accept, promql)
        except _BadAnswer as exc:
            raise Unavailable(
                f"{SYSTEM} at {self._client.base_url} gave an answer that is not the documented API "
                f"({exc}) for query {promql!r}: {response.text[:200]!r}",
                code=f"{SYSTEM}.bad_answer",
                details={"status": response.status_code, "query": promql},
            ) from exc


def _unix(moment: datetime, name: str) -> str:
    if moment.tzinfo is None:
        # A naive datetime would silently be read as the server's local time.
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return repr(moment.timestamp())


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _raise_api_error(body: dict[str, Any], status: int, promql: str) -> None:
    kind = str(body.get("errorType", ""))
    message = str(body.get("error", "")).strip() or "no message"
    details = {"status": status, "errorType": kind, "error": message, "query": promql}
    if kind == "bad_data":
        raise Invalid(
            f"Prometheus rejected the query {promql!r}: {message}",
            code=f"{SYSTEM}.bad_query",
            details=details,
        )
    # execution (422), timeout/canceled (503), internal, unavailable: nothing the caller can fix by
    # rephrasing the request, so the graph shows "Prometheus unavailable" and a retry may succeed.
    raise Unavailable(
        f"Prometheus could not run the query {promql!r} ({kind or status}): {message}",
        code=f"{SYSTEM}.query_failed",
        details=details,
    )


def _parse_data(data: Any, accept: set[str], promql: str) -> list[Series]:
    if not isinstance(data, dict):
        raise _BadAnswer("data is not an object")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "string":
        raise Invalid(
            f"The query {promql!r} gives a string, not numbers to graph.",
            code=f"{SYSTEM}.not_numeric",
            details={"query": promql},
        )
    if kind not in ("matrix", "vector", "scalar"):
        raise _BadAnswer(f"unknown resultType {kind!r}")
    if kind not in accept:
        raise _BadAnswer(f"resultType {kind} where {' or '.join(sorted(accept))} was expected")
    if kind == "scalar":
        return [Series(labels={}, points=[_point(result)])]
    if not isinstance(result, list):
        raise _BadAnswer("result is not a list")
    series: list[Series] = []
    for item in result:
        if not isinstance(item, dict):
            raise _BadAnswer("a result entry is not an object")
        labels = _labels(item.get("metric"))
        if kind == "vector":
            # Native histograms (a feature flag in 2.42) come as "histogram": no plain value to graph.
            points = [] if "histogram" in item else [_point(item.get("value"))]
        else:
            raw = item.get("values", [] if "histograms" in item else None)
            if not isinstance(raw, list):
                raise _BadAnswer("a matrix entry has no values list")
            points = [_point(pair) for pair in raw]
        series.append(Series(labels=labels, points=points))
    return series


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        raise _BadAnswer("metric is not an object of string labels")
    return dict(metric)


def _point(pair: Any) -> tuple[float, float | None]:
    if not (isinstance(pair, list) and len(pair) == 2):
        raise _BadAnswer("a sample is not a [timestamp, value] pair")
    at, text = pair
    if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(text, str):
        raise _BadAnswer("a sample is not [number, string]")
    try:
        value = float(text)
    except ValueError:
        raise _BadAnswer(f"sample value {text!r} is not a number") from None
    return float(at), value if math.isfinite(value) else None
