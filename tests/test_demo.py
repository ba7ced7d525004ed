"""The demo `make run` sets up, without its root-only steps: the pusher fills a real registry with the
example service's images (as the portal then reads them), the Prometheus configuration the demo writes
passes `promtool check config`, and a real Prometheus started with it scrapes the version the local
driver runs, found through the targets file the driver writes."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from quarterdeck.clock import SystemClock
from quarterdeck.deploys.drivers import DriverContext, StepTarget
from quarterdeck.deploys.drivers.local import LocalDriver
from quarterdeck.integrations.oci_registry import RegistryClient
from tests.conftest import ROOT
from tests.pg_cluster import free_port
from tests.prometheus_server import wait_for_series
from tests.registry_server import registry_installed, registry_server

PUSHER = ROOT / "scripts" / "demo_registry.py"
SERVICES = ROOT / "scripts" / "demo_services.py"
REPOSITORY = "developer-experience/hello-service"
VERSIONS = ["1.0.0", "1.1.0", "1.2.0-bad"]
EXAMPLES = ROOT / "examples"


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )


def test_the_pusher_puts_one_image_per_version_in_the_registry(tmp_path: Path) -> None:
    assert registry_installed(), "docker-registry is missing: run scripts/install-test-deps.sh as root"
    with registry_server(tmp_path / "registry") as url:
        pushed = run_script(str(PUSHER), url, REPOSITORY, *VERSIONS)
        again = run_script(str(PUSHER), url, REPOSITORY, *VERSIONS)
        host = url.removeprefix("http://")
        with RegistryClient(plain_http_hosts=frozenset({host})) as client:
            tags = client.list_tags(host, REPOSITORY)
            images = client.images(host, REPOSITORY)

    assert (pushed.returncode, pushed.stderr) == (0, ""), pushed.stderr
    assert pushed.stdout.startswith(f"pushed {host}/{REPOSITORY}: 1.0.0 (sha256:")
    assert again.stdout == pushed.stdout, "pushing again makes other digests"
    assert sorted(tags) == sorted(VERSIONS)
    # Newest first, a week apart, each its own image.
    assert [image.tag for image in images] == ["1.2.0-bad", "1.1.0", "1.0.0"]
    assert [image.created.isoformat() if image.created else None for image in images] == [
        "2026-11-30T09:50:00+00:00",
        "2026-11-23T09:50:00+00:00",
        "2026-11-16T09:50:00+00:00",
    ]
    assert len({image.digest for image in images}) == 3


def test_an_unreachable_registry_is_said_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_script(str(PUSHER), url, REPOSITORY, "1.0.0")

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"demo registry: {url}/v2/{REPOSITORY} (1.0.0): the registry is not reachable"
    )
    assert result.stderr.count("\n") == 1


@pytest.fixture
def local_state() -> Iterator[Path]:
    assert shutil.which("haproxy"), "haproxy is missing: run scripts/install-test-deps.sh as root"
    # Under /tmp, short: HAProxy's admin socket path must fit in 107 characters.
    path = Path(tempfile.mkdtemp(prefix="qd-demo-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def hello_driver(state_dir: Path, listen_port: int) -> LocalDriver:
    """The local driver as examples/deploy-drivers.yaml configures it, on a free frontend port."""
    config = {
        "command": [
            "{python}",
            "runnable/hello_service.py",
            "--service",
            "{service}",
            "--version",
            "{version}",
            "--port",
            "{port}",
        ],
        "listen_port": listen_port,
        "state_dir": str(state_dir),
        "stop_timeout_seconds": 5,
    }
    context = DriverContext(
        name="local", state_dir=state_dir, base_dir=EXAMPLES, where="test_demo", clock=SystemClock()
    )
    return LocalDriver.from_config(config, context)


def start_prometheus(config: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (data / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=1) as client:
        while True:
            try:
                if client.get(f"{url}/-/ready").status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            assert process.poll() is None, (data / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus was not ready within 15 s"
            time.sleep(0.05)


def test_the_demos_prometheus_scrapes_the_version_the_local_driver_runs(
    local_state: Path, tmp_path: Path
) -> None:
    assert shutil.which("promtool"), "promtool is missing: Debian's prometheus package ships it"
    config = tmp_path / "prometheus.yml"
    written = run_script(
        str(SERVICES), "prometheus-config", "--state-dir", str(local_state), "--out", str(config)
    )
    assert written.returncode == 0, written.stderr
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [job] = json.loads(config.read_text().split("\n", 1)[1])["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == [str(local_state / "prometheus-targets.json")]

    listen_port = free_port()
    driver = hello_driver(local_state, listen_port)
    process, url = start_prometheus(config, tmp_path)
    try:
        target = StepTarget("hello-service", "staging", "1.0.0")
        driver.prepare(target, "demo:prepare")
        driver.promote(target, "demo:promote")
        [group] = json.loads((local_state / "prometheus-targets.json").read_text())
        assert group["labels"] == {
            "service": "hello-service",
            "version": "1.0.0",
            "environment": "staging",
            "slot": "stable",
        }
        for _ in range(5):
            conn = http.client.HTTPConnection("127.0.0.1", listen_port, timeout=5)
            conn.request("GET", "/")
            assert conn.getresponse().status == 200
            conn.close()

        [series] = wait_for_series(url, 'http_requests_total{service="hello-service",code="200"}', timeout=18)
    finally:
        driver.stop_everything()
        process.terminate()
        process.wait(timeout=10)

    assert {k: series.labels[k] for k in ("version", "environment", "slot", "job")} == {
        "version": "1.0.0",
        "environment": "staging",
        "slot": "stable",
        "job": "local-deploys",
    }
    assert json.loads((local_state / "prometheus-targets.json").read_text()) == []
