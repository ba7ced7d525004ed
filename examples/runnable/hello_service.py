"""A small HTTP service the example organisation deploys for real with the `local` driver.

Standard library only. It answers `/` with its name and version (and the `X-Version` header on every
answer, so a test can tell which version served a request), `/health` for the load balancer's checks,
and `/metrics` in the Prometheus text exposition format:

- `http_requests_total{service,version,code}`: a counter of the requests answered (all paths but
  `/health` and `/metrics`, so health checks and scrapes do not dilute the error ratio);
- `http_request_duration_seconds{service,version}`: a histogram of the time taken to answer them.

Its behaviour follows its version, so a canary can be seen to be good or bad:
- a version with `-bad` in it (`1.2.0-bad`) answers 500 to a share of requests (`--error-rate`,
  30 % unless given): exactly that share, spread evenly, so a test can count on it;
- a version with `-slow` in it takes `--latency-ms` (250 unless given) longer to answer;
- any other version (`1.0.0`, `1.1.0`) answers 200 at once.

    python3 hello_service.py --port 8001 --version 1.1.0 [--service hello] [--start-delay 2]

`--start-delay` makes `/health` answer 503 for that many seconds after start, as a slow service would.
SIGTERM stops it gracefully: requests in flight are answered first.
"""

from __future__ import annotations

import argparse
import math
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the latency histogram's buckets; +Inf is added when written."""
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


def label(value: str) -> str:
    """A label value escaped as the exposition format asks: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts by status code and the latency histogram, safe to update from many threads."""

    def __init__(self, service: str, version: str) -> None:
        self.labels = f'service="{label(service)}",version="{label(version)}"'
        self.lock = threading.Lock()
        self.codes: dict[int, int] = {}
        self.buckets = [0] * len(BUCKETS)
        self.total_seconds = 0.0
        self.count = 0

    def observe(self, code: int, seconds: float) -> None:
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[index] += 1
            self.total_seconds += seconds
            self.count += 1

    def exposition(self) -> str:
        with self.lock:
            lines = [
                "# HELP http_requests_total Requests answered, by status code.",
                "# TYPE http_requests_total counter",
            ]
            lines += [
                f'http_requests_total{{{self.labels},code="{code}"}} {n}'
                for code, n in sorted(self.codes.items())
            ]
            lines += [
                "# HELP http_request_duration_seconds Time taken to answer a request.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            lines += [
                f'http_request_duration_seconds_bucket{{{self.labels},le="{bound:g}"}} {n}'
                for bound, n in zip(BUCKETS, self.buckets, strict=True)
            ]
            lines += [
                f'http_request_duration_seconds_bucket{{{self.labels},le="+Inf"}} {self.count}',
                f"http_request_duration_seconds_sum{{{self.labels}}} {self.total_seconds:.6f}",
                f"http_request_duration_seconds_count{{{self.labels}}} {self.count}",
            ]
        return "\n".join(lines) + "\n"


class Behaviour:
    """What the version does: which requests fail, how long each takes, when it is ready."""

    def __init__(self, error_rate: float, latency_seconds: float, ready_at: float) -> None:
        self.error_rate = error_rate
        self.latency_seconds = latency_seconds
        self.ready_at = ready_at
        self.lock = threading.Lock()
        self.served = 0

    def fails_next(self) -> bool:
        """Whether the next request fails: the n-th fails when n x rate crosses a whole number, so
        exactly `error_rate` of any run of requests fail, evenly spread."""
        with self.lock:
            before = math.floor(self.served * self.error_rate)
            self.served += 1
            return math.floor(self.served * self.error_rate) > before


class Server(ThreadingHTTPServer):
    # One request per connection (HTTP/1.0), so a stop never waits for an idle keep-alive connection;
    # server_close() waits for the requests in flight.
    daemon_threads = False

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A peer that hangs up early (the load balancer's health check does) is not worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_handler(
    service: str, version: str, metrics: Metrics, behaviour: Behaviour
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"hello-service/{version}"

        def do_GET(self) -> None:
            started = time.monotonic()
            path = self.path.split("?", 1)[0]
            if path == "/health":
                ready = time.monotonic() >= behaviour.ready_at
                self._answer(200 if ready else 503, "ok\n" if ready else "starting\n")
                return
            if path == "/metrics":
                self._answer(200, metrics.exposition(), content_type=TEXT_FORMAT)
                return
            if path != "/":
                code, body = 404, f"{path} is not here\n"
            elif behaviour.fails_next():
                code, body = 500, f"{service} {version} failed this request\n"
            else:
                code, body = 200, f"hello from {service} {version}\n"
            if behaviour.latency_seconds:
                time.sleep(behaviour.latency_seconds)
            self._answer(code, body)
            metrics.observe(code, time.monotonic() - started)

        def _answer(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Service", service)
            self.send_header("X-Version", version)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: health checks every second would fill the log."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--service", default="hello")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--error-rate", type=float, default=None, help="share of requests answered 500")
    parser.add_argument("--latency-ms", type=float, default=None, help="added to every answer")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds before /health answers 200")
    args = parser.parse_args(argv)

    error_rate = args.error_rate
    if error_rate is None:
        error_rate = 0.3 if "-bad" in args.version else 0.0
    latency_ms = args.latency_ms
    if latency_ms is None:
        latency_ms = 250.0 if "-slow" in args.version else 0.0
    if not 0.0 <= error_rate <= 1.0:
        parser.error(f"--error-rate {error_rate}: expected a share between 0 and 1")
    behaviour = Behaviour(error_rate, latency_ms / 1000, time.monotonic() + args.start_delay)
    metrics = Metrics(args.service, args.version)
    handler = make_handler(args.service, args.version, metrics, behaviour)
    server = Server((args.host, args.port), handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{args.service} {args.version} listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    print(f"{args.service} {args.version} stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
