"""What a step does outside the database: driver calls (with idempotency keys), Prometheus queries,
webhook POSTs and commands. Run by the step job before it writes anything, so no transaction is held
across a network call or a process. Each returns what happened; none raises for an expected failure."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from quarterdeck.deploys.drivers import DeployDriver, DriverError, StepLog, StepResult, StepTarget
from quarterdeck.deploys.pipelines import fill_placeholders
from quarterdeck.deploys.pipelines.format import AnalysisSpec
from quarterdeck.deploys.rollouts.analysis import Measurement, judge
from quarterdeck.errors import QuarterdeckError
from quarterdeck.integrations.http import make_client, mapped_errors
from quarterdeck.integrations.prometheus import PrometheusClient
from quarterdeck.runtime import Runtime

WEBHOOK_TIMEOUT_SECONDS = 10.0
KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Done:
    """What an effect did: whether it worked, its log, and the one sentence saying why not."""

    ok: bool
    log: tuple[str, ...] = ()
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def step_key(rollout_id: int, position: int, action: str) -> str:
    """The idempotency key of one effect of one step: `rollout-12-step-3-traffic`."""
    return f"rollout-{rollout_id}-step-{position}-{action}"


def _driver_calls(calls: Sequence[tuple[str, Callable[[], StepResult]]]) -> Done:
    log: list[str] = []
    for what, call in calls:
        try:
            result = call()
        except DriverError as exc:
            return Done(False, (*log, *exc.log), exc.message)
        except QuarterdeckError as exc:
            return Done(False, tuple(log), f"{what}: {exc.message}")
        log += [f"{what}: {'applied' if result.applied else 'already applied'}", *result.log]
    return Done(True, tuple(log))


def move_traffic(
    driver: DeployDriver,
    target: StepTarget,
    *,
    rollout_id: int,
    position: int,
    prepared: bool,
    weight: int | None,
    promote: bool,
) -> Done:
    """Prepare the new version if nothing has yet, then give it `weight` % (or everything: promote)."""
    calls: list[tuple[str, Callable[[], StepResult]]] = []
    if not prepared:
        key = step_key(rollout_id, position, "prepare")
        calls.append(("prepare", lambda: driver.prepare(target, key)))
    if promote:
        key_promote = step_key(rollout_id, position, "promote")
        calls.append(("promote", lambda: driver.promote(target, key_promote)))
    elif weight is not None:
        key_traffic = step_key(rollout_id, position, "traffic")
        calls.append((f"set traffic to {weight} %", lambda: driver.set_traffic(target, weight, key_traffic)))
    return _driver_calls(calls)


def roll_back(driver: DeployDriver, target: StepTarget, *, rollout_id: int, position: int) -> Done:
    key = step_key(rollout_id, position, "rollback")
    return _driver_calls([("rollback", lambda: driver.rollback(target, key))])


def _value(client: PrometheusClient, promql: str) -> tuple[float | None, str]:
    """The query's one value now, or None with why (no series, several, NaN)."""
    try:
        series = client.query(promql)
    except QuarterdeckError as exc:
        return None, exc.message
    if not series:
        return None, "no data"
    if len(series) > 1:
        return None, f"{len(series)} series where one value was expected"
    points = series[0].points
    if not points or points[-1][1] is None:
        return None, "no data"
    return points[-1][1], ""


def measure(
    client: PrometheusClient | None,
    spec: AnalysisSpec,
    values: Mapping[str, str],
    *,
    baseline_version: str | None,
) -> list[Measurement]:
    """One interval: each query with the deploy's placeholders filled, and, for a condition relative
    to the baseline, the same query for the baseline version."""
    results: list[Measurement] = []
    for name, query in spec.queries.items():
        if client is None:
            note = "Prometheus is not configured (QD_PROMETHEUS_URL)"
            results.append(judge(name, query.condition, None, None, note=note))
            continue
        value, note = _value(client, fill_placeholders(query.query, values))
        baseline: float | None = None
        if "baseline" in query.condition and baseline_version is not None:
            baseline_values = {**values, "version": baseline_version}
            baseline, base_note = _value(client, fill_placeholders(query.query, baseline_values))
            if baseline is None and not note:
                note = f"baseline {baseline_version}: {base_note}"
        results.append(judge(name, query.condition, value, baseline, note=note))
    return results


def webhook_client(runtime: Runtime) -> httpx.Client:
    """The process's one client for notify steps: its connections are reused from step to step."""
    return runtime.state("deploys.webhook_http", lambda: make_client(timeout=WEBHOOK_TIMEOUT_SECONDS))


def post_webhook(
    client: httpx.Client, url: str, body: dict[str, Any], *, key: str, headers: Mapping[str, str]
) -> Done:
    """POST the rollout's state as JSON with an Idempotency-Key header; 2xx is success."""
    try:
        with mapped_errors("webhook"):
            response = client.post(url, json=body, headers={**headers, "Idempotency-Key": key})
    except QuarterdeckError as exc:
        return Done(False, (f"POST {url}: {exc.message}",), f"webhook {url}: {exc.message}")
    line = f"POST {url}: {response.status_code}"
    if response.is_success:
        return Done(True, (line,))
    return Done(False, (line, response.text[:500]), f"webhook {url} answered {response.status_code}")


def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Done:
    """Run `argv` (no shell) in a session of its own; its output (bounded) is the log. Past `timeout`
    its process group gets SIGTERM, then SIGKILL."""
    log = StepLog()
    log.add(f"$ {' '.join(argv)}")
    try:
        process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        return Done(False, log.lines(), f"command {argv[0]!r} cannot be run: {exc.strerror or exc}")
    try:
        output, _ = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(process)
        output, _ = process.communicate()
    log.write_bytes(output or b"")
    log.close()
    if timed_out:
        log.add(f"timed out after {timeout:g} s: stopped")
        return Done(False, log.lines(), f"command {argv[0]!r} ran longer than {timeout:g} s and was stopped")
    if process.returncode != 0:
        last = next((line for line in reversed(log.lines()) if line.strip()), "")
        return Done(
            False, log.lines(), f"command {argv[0]!r} exited with code {process.returncode}: {last[:200]}"
        )
    return Done(True, log.lines())


def _kill(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            time.sleep(0.05)
