"""A real Prometheus (the Debian binary) for tests, and a small exporter for it to scrape."""

from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from quarterdeck.integrations.prometheus import PrometheusClient, Series
from tests.pg_cluster import free_port

PROMETHEUS = "prometheus"

# Per second: 50 good requests and 2 failures, so the error ratio is 2/52.
GOOD_PER_SECOND = 50.0
FAILED_PER_SECOND = 2.0
# Cumulative share of requests at or under each bucket bound: p50 is 25 ms, p99 is 500 ms.
BUCKETS = (
    ("0.005", 0.1),
    ("0.01", 0.3),
    ("0.025", 0.5),
    ("0.05", 0.7),
    ("0.1", 0.85),
    ("0.25", 0.95),
    ("0.5", 0.99),
    ("1", 1.0),
    ("+Inf", 1.0),
)
MEAN_SECONDS = 0.04


def exposition(service: str, elapsed: float) -> str:
    """The exporter's page after `elapsed` seconds (Prometheus text format 0.0.4); counters only grow."""
    good = math.floor(elapsed * GOOD_PER_SECOND)
    failed = math.floor(elapsed * FAILED_PER_SECOND)
    total = good + failed
    lines = [
        "# HELP http_requests_total Requests served, by status code.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{service="{service}",code="200"}} {good}',
        f'http_requests_total{{service="{service}",code="500"}} {failed}',
        "# HELP http_request_duration_seconds Time to answer a request.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    lines += [
        f'http_request_duration_seconds_bucket{{service="{service}",le="{le}"}} {math.floor(total * share)}'
        for le, share in BUCKETS
    ]
    lines += [
        f'http_request_duration_seconds_sum{{service="{service}"}} {total * MEAN_SECONDS}',
        f'http_request_duration_seconds_count{{service="{service}"}} {total}',
    ]
    return "\n".join(lines) + "\n"


@contextmanager
def metrics_exporter(service: str) -> Iterator[str]:
    """Serve /metrics for `service` on a free loopback port; yields the scrape target `127.0.0.1:PORT`."""
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = exposition(service, time.monotonic() - started).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape on stderr would drown the test output

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _config(targets: list[str]) -> str:
    quoted = ", ".join(f"'{target}'" for target in targets)
    return (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f"    static_configs: [{{targets: [{quoted}]}}]\n"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def prometheus_server(folder: Path, targets: list[str]) -> Iterator[str]:
    """Run Prometheus scraping `targets` every second, data and log in `folder`; yields its base URL."""
    config = folder / "prometheus.yml"
    config.write_text(_config(targets))
    log_path = folder / "prometheus.log"
    for attempt in range(3):  # free_port() can race with another process taking the port
        port = free_port()
        with log_path.open("ab") as log:
            offset = log.tell()
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base_url = f"http://127.0.0.1:{port}"
        try:
            ready = _wait_ready(base_url, process)
        except BaseException:
            _stop(process)
            raise
        if ready:
            break
        output = log_path.read_bytes()[offset:].decode(errors="replace")
        if "address already in use" not in output or attempt == 2:
            raise RuntimeError(f"prometheus exited with {process.returncode}: {output[-2000:]}")
    try:
        yield base_url
    finally:
        _stop(process)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 15.0) -> bool:
    """True once /-/ready answers 200 (about 0.1 s), False if the process exits first."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=1.0) as client:
        while process.poll() is None:
            try:
                if client.get("/-/ready").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus at {base_url} not ready after {timeout}s")
            time.sleep(0.05)
    return False


def wait_for_series(base_url: str, promql: str, timeout: float = 25.0) -> list[Series]:
    """Poll an instant query until it has a result. Prometheus 2.42 takes ~6 s to its first sample:
    its service-discovery updates are throttled to every 5 s, with no flag to change that."""
    deadline = time.monotonic() + timeout
    with PrometheusClient(base_url) as client:
        while True:
            result = client.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result for {promql!r} from {base_url} after {timeout}s")
            time.sleep(0.2)
