"""End to end, on SQLite and PostgreSQL: rollouts of the example service with the `local` driver, a real
HAProxy in front of real hello_service processes, a real Prometheus scraping both versions, and a real
job worker on the system clock. A healthy version goes through every step to all of the traffic; an
erroring one (`-bad`) is rolled back by the analysis by itself and the traffic returns to the old
version, as requests sent through HAProxy show."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.deploys.drivers import deploy_drivers
from quarterdeck.deploys.drivers.local import LocalDriver
from quarterdeck.runtime import Runtime, running
from tests.conftest import ROOT, make_token, make_user
from tests.deploys.helpers import post, put_environments, report
from tests.helpers import Json, bearer, create_service, create_team, wait_until
from tests.pg_cluster import free_port
from tests.prometheus_server import prometheus_server

SERVICE = "hello-service"
HELLO = str(ROOT / "examples" / "runnable" / "hello_service.py")
ERRORS = (
    '(sum(rate(http_requests_total{service="{service}",version="{version}",code=~"5.."}[5s])) or vector(0)) '
    '/ sum(rate(http_requests_total{service="{service}",version="{version}"}[5s]))'
)
PIPELINE: Json = {
    "name": "e2e-canary",
    "steps": [
        {"deploy": {"weight": 50}},
        {
            "analysis": {
                "interval": "10s",
                "count": 1,
                "queries": {"error-rate": {"query": ERRORS, "condition": "< 0.05"}},
            }
        },
        {"deploy": {"weight": 100}},
    ],
}


class Folder:
    """The local driver's state folder of the test running now (each test has its own: applied keys are
    kept there, and rollout ids start again at 1 in each database)."""

    path: Path | None = None


@contextmanager
def versions_exporter(folder: Folder) -> Iterator[str]:
    """Serve, on each scrape, the /metrics of every version process the local driver runs (read from its
    state.json), one after the other: Prometheus scrapes the stable and the canary through one static
    target, whatever ports the driver gave them. Comment lines are left out (a family's # TYPE may come
    once only); the samples are the processes' own."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            lines: list[str] = []
            try:
                assert folder.path is not None
                state = json.loads((folder.path / "state.json").read_text())
            except (AssertionError, OSError, ValueError):
                state = {"services": {}}
            for svc in state.get("services", {}).values():
                for run in svc.get("processes", {}).values():
                    try:
                        with urllib.request.urlopen(
                            f"http://127.0.0.1:{run['port']}/metrics", timeout=1
                        ) as r:
                            text = r.read().decode()
                    except OSError:
                        continue
                    lines += [line for line in text.splitlines() if line and not line.startswith("#")]
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def folder() -> Folder:
    assert shutil.which("haproxy"), "haproxy is missing: run scripts/install-test-deps.sh as root"
    return Folder()


@pytest.fixture
def local_state(folder: Folder) -> Iterator[Path]:
    """This test's local driver folder, short and under /tmp: HAProxy's admin socket path must fit 107
    bytes."""
    path = Path(tempfile.mkdtemp(prefix="qd-e2e-", dir="/tmp"))
    folder.path = path
    yield path
    folder.path = None
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus(folder: Folder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("prometheus")
    with versions_exporter(folder) as target, prometheus_server(data, [target]) as url:
        yield url


class Traffic:
    """Requests sent through HAProxy all along (about 40 a second), so both versions have a rate."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.025):
            with contextlib.suppress(OSError):
                served(self.port, 1)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


def served(port: int, count: int) -> Counter[str]:
    """Which version answered each of `count` requests through HAProxy, with the status unless 200."""
    found: Counter[str] = Counter()
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            version = response.getheader("X-Version") or "none"
            found[version if response.status == 200 else f"{version} {response.status}"] += 1
        finally:
            conn.close()
    return found


@pytest.fixture
def portal(db_url: str, tmp_path: Path, local_state: Path, prometheus: str) -> Iterator[tuple[Runtime, int]]:
    """A runtime on the system clock with a worker running, the local driver for hello-service, and the
    HAProxy frontend's port; every process and haproxy are stopped at the end."""
    port = free_port()
    drivers = tmp_path / "drivers.yaml"
    config: dict[str, Any] = {
        "command": [
            sys.executable,
            HELLO,
            "--service",
            "{service}",
            "--version",
            "{version}",
            "--port",
            "{port}",
        ],
        "listen_port": port,
        "state_dir": str(local_state),
        "start_timeout_seconds": 20,
        "stop_timeout_seconds": 5,
    }
    drivers.write_text(json.dumps({"drivers": [{"service": SERVICE, "driver": "local", "config": config}]}))
    settings = Settings(
        database_url=db_url,
        git_cache_dir=tmp_path / "git",
        embedded_worker=False,
        deploy_drivers=drivers,
        deploy_state_dir=tmp_path / "state",
        prometheus_url=prometheus,
    )
    with running(settings) as runtime:
        worker = runtime.worker(concurrency=2)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        driver = deploy_drivers(runtime).driver_for(SERVICE, "staging")
        assert isinstance(driver, LocalDriver)
        try:
            yield runtime, port
        finally:
            worker.stop()
            thread.join(timeout=30)
            driver.stop_everything()


def finished(client: TestClient, rollout_id: int, timeout: float = 45.0) -> Json:
    answer: Json = {}

    def done() -> bool:
        nonlocal answer
        answer = client.get(f"/api/v1/rollouts/{rollout_id}").json()
        return bool(answer["final"])

    try:
        wait_until(done, timeout=timeout, what=f"rollout {rollout_id} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {json.dumps(answer, indent=1)[:6000]}") from None
    return answer


def test_a_healthy_version_is_promoted_and_a_bad_one_rolled_back(portal: tuple[Runtime, int]) -> None:
    runtime, port = portal
    clock = FrozenClock(datetime.now(UTC))
    make_user(runtime.sessions, clock, "admin@e2e.example", role=GlobalRole.ADMIN)
    token = make_token(runtime.sessions, clock, user="admin@e2e.example", scopes=["admin"], name="admin")
    with TestClient(create_app(runtime=runtime), headers=bearer(token)) as client:
        put_environments(client, (("dev", "Dev", False), ("staging", "Staging", False)))
        create_team(client, "dx")
        create_service(client, SERVICE, "dx", tier=3)
        now = datetime.now(UTC)
        post(client, report("1.0.0", "staging", service=SERVICE, now=now))
        for version in ("1.1.0", "1.2.0-bad"):
            post(client, report(version, "dev", service=SERVICE, now=now, id=f"ci:{version}"))
        applied = client.put(f"/api/v1/pipelines/service/{SERVICE}?environment=staging", json=PIPELINE)
        assert applied.status_code == 201, applied.text

        with Traffic(port):
            asked = time.monotonic()
            started = client.post(
                f"/api/v1/services/{SERVICE}/rollouts", json={"version": "1.1.0", "environment": "staging"}
            )
            assert started.status_code == 201, started.text
            rollout_id = started.json()["id"]
            wait_until(
                lambda: (
                    client.get(f"/api/v1/rollouts/{rollout_id}").json()["steps"][0]["started_at"] is not None
                ),
                timeout=10,
                what="the first step to start",
            )
            first_step = time.monotonic() - asked
            good = finished(client, rollout_id)
            assert (good["state"], good["weight"]) == ("succeeded", 100), good
            analysis = good["steps"][1]["analysis"]
            assert analysis["intervals"][0]["verdict"] == "pass", analysis
        assert served(port, 100) == Counter({"1.1.0": 100})

        with Traffic(port):
            started = client.post(
                f"/api/v1/services/{SERVICE}/rollouts",
                json={"version": "1.2.0-bad", "environment": "staging"},
            )
            assert started.status_code == 201, started.text
            bad = finished(client, started.json()["id"])
        assert bad["state"] == "rolled_back", bad
        assert bad["reason"].startswith("Analysis error-rate failed 1 of 1 intervals: 0."), bad["reason"]
        assert bad["baseline_version"] == "1.1.0"
        assert served(port, 100) == Counter({"1.1.0": 100})
        live = client.get(f"/api/v1/services/{SERVICE}/live").json()
        assert {
            e["environment"]["slug"]: (e["deploy"] or {}).get("release", {}).get("version")
            for e in live["environments"]
        }["staging"] == "1.1.0"
    print(f"start to first step: {first_step * 1000:.0f} ms")
    assert first_step < 2.0
