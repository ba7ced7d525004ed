"""The `local` driver with a real HAProxy (Debian's haproxy) and the example service's real processes:
the traffic a version gets, counted by sending requests through HAProxy's frontend, follows the
weights set through the Runtime API; promote and rollback leave one version with all the traffic and
the other's process gone; keys apply once; a driver built anew, or after one was killed mid-step, goes
on from the state folder; without haproxy the driver says so in one line."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from quarterdeck.clock import SystemClock
from quarterdeck.deploys.drivers import DriverContext, DriverError, StepTarget
from quarterdeck.deploys.drivers.haproxy import MISSING
from quarterdeck.deploys.drivers.local import LocalDriver
from quarterdeck.deploys.drivers.processes import start_ticks
from tests.conftest import ROOT
from tests.pg_cluster import free_port

EXAMPLES = ROOT / "examples"
HELLO = [
    "{python}",
    "runnable/hello_service.py",
    "--service",
    "{service}",
    "--version",
    "{version}",
    "--port",
    "{port}",
]
V1 = StepTarget("hello-service", "staging", "1.0.0")
V2 = StepTarget("hello-service", "staging", "1.1.0", baseline_version="1.0.0")
BAD = StepTarget("hello-service", "staging", "1.2.0-bad", baseline_version="1.0.0")
REQUESTS = 200
TOLERANCE = 5
"""Percentage points a measured share may be off the weight (roundrobin is exact; health checks may
take a request's turn)."""


class Local:
    """The drivers of one test over one state folder, the frontend's port, and how to build another."""

    def __init__(self, state_dir: Path, listen_port: int) -> None:
        self.state_dir = state_dir
        self.listen_port = listen_port
        self.config: dict[str, Any] = {
            "command": HELLO,
            "listen_port": listen_port,
            "state_dir": str(state_dir),
            "start_timeout_seconds": 20,
            "stop_timeout_seconds": 5,
        }

    def driver(self, **overrides: Any) -> LocalDriver:
        context = DriverContext(
            name="local",
            state_dir=self.state_dir,
            base_dir=EXAMPLES,
            where="test drivers file, drivers[0]",
            clock=SystemClock(),
        )
        return LocalDriver.from_config({**self.config, **overrides}, context)

    def state(self) -> dict[str, Any]:
        body = json.loads((self.state_dir / "state.json").read_text())
        found: dict[str, Any] = body["services"]["hello-service@staging"]
        return found

    def pid_of(self, version: str) -> int:
        return int(self.state()["processes"][version]["pid"])

    def split(self, count: int = REQUESTS) -> Counter[str]:
        """Which version answered each of `count` requests through HAProxy (X-Version), with its
        status when it was not 200 (`1.2.0-bad 500`)."""
        served: Counter[str] = Counter()
        for _ in range(count):
            conn = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=5)
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                version = response.getheader("X-Version") or "none"
                served[version if response.status == 200 else f"{version} {response.status}"] += 1
            finally:
                conn.close()
        return served


def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while start_ticks(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def share(served: Counter[str], version: str) -> float:
    return 100 * served[version] / sum(served.values())


@pytest.fixture
def local() -> Iterator[Local]:
    assert shutil.which("haproxy"), "haproxy is missing: run scripts/install-test-deps.sh as root"
    # Under /tmp, short: HAProxy's admin socket path must fit in 107 characters.
    state_dir = Path(tempfile.mkdtemp(prefix="qd-local-", dir="/tmp"))
    found = Local(state_dir, free_port())
    try:
        yield found
    finally:
        found.driver().stop_everything()
        shutil.rmtree(state_dir, ignore_errors=True)


def deploy_first(driver: LocalDriver) -> None:
    driver.prepare(V1, "v1:prepare")
    driver.promote(V1, "v1:promote")


def test_the_traffic_each_version_gets_follows_the_weights(local: Local) -> None:
    driver = local.driver()
    deploy_first(driver)
    assert local.split() == Counter({"1.0.0": REQUESTS})
    v1_pid = local.pid_of("1.0.0")

    prepared = driver.prepare(V2, "v2:prepare")
    assert (
        prepared.log[-1]
        == f"1.1.0 is up next to 1.0.0 and takes no traffic yet (http://127.0.0.1:{local.listen_port})"
    )

    shares = {}
    for step, weight in enumerate((0, 10, 50, 100)):
        driver.set_traffic(V2, weight, f"v2:traffic:{step}")
        served = local.split()
        shares[weight] = share(served, "1.1.0")
        assert abs(shares[weight] - weight) <= TOLERANCE, (weight, served)
        assert set(served) <= {"1.0.0", "1.1.0"}
        status = driver.status(V2)
        assert (status.weight_of("1.1.0"), status.weight_of("1.0.0"), status.healthy) == (
            weight,
            100 - weight,
            True,
        )

    promoted = driver.promote(V2, "v2:promote")

    assert local.split() == Counter({"1.1.0": REQUESTS})
    assert gone(v1_pid), "1.0.0's process still runs after the promotion"
    assert f"stopped hello-service 1.0.0 (pid {v1_pid})" in promoted.log
    status = driver.status(V2)
    assert [(s.role, s.version, s.weight, s.healthy) for s in status.slots] == [
        ("stable", "1.1.0", 100, True)
    ]
    assert status.address == f"http://127.0.0.1:{local.listen_port}"
    print(f"share of 1.1.0 at weights 0/10/50/100: {shares}")


def test_a_rollback_returns_all_the_traffic_to_the_baseline(local: Local) -> None:
    driver = local.driver()
    deploy_first(driver)
    driver.prepare(BAD, "bad:prepare")
    driver.set_traffic(BAD, 50, "bad:traffic")
    served = local.split()
    bad_pid = local.pid_of("1.2.0-bad")
    # The bad version fails 30 % of its requests, exactly: 30 of its 100.
    assert served == Counter({"1.0.0": 100, "1.2.0-bad": 70, "1.2.0-bad 500": 30})

    rolled_back = driver.rollback(BAD, "bad:rollback")

    assert local.split() == Counter({"1.0.0": REQUESTS})
    assert gone(bad_pid), "the bad version's process still runs after the rollback"
    assert rolled_back.log[-1] == "1.0.0 has 100 % of the traffic again; 1.2.0-bad is stopped"
    assert list(local.state()["processes"]) == ["1.0.0"]
    assert local.state()["slots"] == {"stable": "1.0.0", "canary": None}


def test_a_rollback_after_the_promotion_starts_the_baseline_again(local: Local) -> None:
    driver = local.driver()
    deploy_first(driver)
    driver.prepare(V2, "v2:prepare")
    driver.promote(V2, "v2:promote")
    v2_pid = local.pid_of("1.1.0")

    driver.rollback(V2, "v2:rollback")

    assert local.split() == Counter({"1.0.0": REQUESTS})
    assert gone(v2_pid)


def test_a_key_applied_once_changes_nothing_when_it_comes_again(local: Local) -> None:
    driver = local.driver()
    deploy_first(driver)
    driver.prepare(V2, "v2:prepare")
    v2_pid = local.pid_of("1.1.0")
    driver.set_traffic(V2, 10, "v2:traffic:1")
    driver.set_traffic(V2, 50, "v2:traffic:2")

    again = [
        driver.prepare(V2, "v2:prepare"),
        driver.set_traffic(V2, 10, "v2:traffic:1"),
        local.driver().set_traffic(V2, 10, "v2:traffic:1"),
    ]

    assert [result.applied for result in again] == [False, False, False]
    assert local.pid_of("1.1.0") == v2_pid
    assert abs(share(local.split(), "1.1.0") - 50) <= TOLERANCE
    assert driver.status(V2).weight_of("1.1.0") == 50


def test_a_new_driver_over_the_state_folder_goes_on_where_the_last_one_was(local: Local) -> None:
    first = local.driver()
    deploy_first(first)
    first.prepare(V2, "v2:prepare")
    first.set_traffic(V2, 50, "v2:traffic")
    v1_pid = local.pid_of("1.0.0")
    del first

    second = local.driver()
    assert second.status(V2).weight_of("1.1.0") == 50
    # Even haproxy and the stable version dying in between (a reboot) is recovered from the state.
    haproxy_pid = int((local.state_dir / "haproxy.pid").read_text().split()[0])
    os.kill(haproxy_pid, signal.SIGKILL)
    os.killpg(v1_pid, signal.SIGKILL)
    assert gone(v1_pid)

    revived = second.set_traffic(V2, 10, "v2:traffic:2")

    assert any(line.startswith("haproxy started (pid") for line in revived.log)
    assert "1.0.0 (stable) is not running: starting it again" in revived.log
    assert abs(share(local.split(), "1.1.0") - 10) <= TOLERANCE
    new_v1 = local.pid_of("1.0.0")
    second.promote(V2, "v2:promote")
    assert local.split() == Counter({"1.1.0": REQUESTS})
    assert gone(new_v1)


KILLED_DRIVER = """
import json, sys
from pathlib import Path
from quarterdeck.clock import SystemClock
from quarterdeck.deploys.drivers import DriverContext, StepTarget
from quarterdeck.deploys.drivers.local import LocalDriver
config, base = json.loads(sys.argv[1]), Path(sys.argv[2])
context = DriverContext("local", Path(config["state_dir"]), base, "killed driver", SystemClock())
driver = LocalDriver.from_config(config, context)
driver.prepare(StepTarget("hello-service", "staging", "1.0.0"), "v1:prepare")
"""


def test_a_driver_killed_mid_step_is_taken_over_without_a_second_process(local: Local) -> None:
    # The version takes 2 s to answer its health check: the driver is killed while it waits.
    slow = {**local.config, "command": [*HELLO, "--start-delay", "2"]}
    worker = subprocess.Popen(
        [sys.executable, "-c", KILLED_DRIVER, json.dumps(slow), str(EXAMPLES)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while "1.0.0" not in (
            local.state()["processes"] if (local.state_dir / "state.json").exists() else {}
        ):
            assert worker.poll() is None, worker.stderr.read() if worker.stderr else b""
            assert time.monotonic() < deadline, "the driver never started 1.0.0"
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait()
        if worker.stderr:
            worker.stderr.close()
    orphan = local.pid_of("1.0.0")

    taken_over = local.driver(command=slow["command"]).prepare(V1, "v1:prepare")

    assert taken_over.applied
    assert (
        f"hello-service 1.0.0 runs already (pid {orphan}, port {local.state()['processes']['1.0.0']['port']})"
        in (taken_over.log)
    )
    assert not any(line.startswith("haproxy started") for line in taken_over.log), "haproxy was started twice"
    local.driver().promote(V1, "v1:promote")
    assert local.split() == Counter({"1.0.0": REQUESTS})
    assert local.pid_of("1.0.0") == orphan


def test_a_version_that_cannot_start_fails_the_step_and_leaves_nothing(local: Local) -> None:
    crash = [sys.executable, "-c", "import sys; print('cannot open config.toml'); sys.exit(2)"]
    driver = local.driver(command=crash)

    with pytest.raises(DriverError) as caught:
        driver.prepare(V1, "v1:prepare")

    assert caught.value.message.startswith("hello-service 1.0.0 exited before /health answered: ")
    assert "cannot open config.toml" in caught.value.message
    assert local.state()["processes"] == {}
    assert local.state()["slots"] == {"stable": None, "canary": None}


def test_set_traffic_before_prepare_is_refused(local: Local) -> None:
    driver = local.driver()
    deploy_first(driver)

    with pytest.raises(
        DriverError, match=r"hello-service 1.1.0 in staging is not the canary \(that is none\)"
    ):
        driver.set_traffic(V2, 10, "v2:traffic")


def test_without_haproxy_the_driver_says_what_to_install_in_one_line(
    local: Local, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    driver = local.driver()
    calls: list[Callable[[], object]] = [
        lambda: driver.prepare(V1, "v1:prepare"),
        lambda: driver.set_traffic(V1, 10, "v1:traffic"),
        lambda: driver.status(V1),
    ]

    for call in calls:
        with pytest.raises(DriverError) as caught:
            call()
        assert str(caught.value) == MISSING
        assert (
            MISSING
            == "the local driver needs HAProxy: apt-get install haproxy (or `make run` as root installs it)"
        )
    assert not (local.state_dir / "state.json").exists()


def test_a_second_service_reloads_haproxy_and_the_first_keeps_its_traffic(local: Local) -> None:
    deploy_first(local.driver())
    elsewhere = Local(local.state_dir, free_port())
    production = StepTarget("hello-service", "production", "1.1.0")

    prepared = elsewhere.driver().prepare(production, "prod:prepare")
    elsewhere.driver().promote(production, "prod:promote")

    assert any(line.startswith("haproxy reloaded (pid") for line in prepared.log)
    assert local.split(50) == Counter({"1.0.0": 50})
    assert elsewhere.split(50) == Counter({"1.1.0": 50})


def test_a_frontend_port_in_use_is_reported_in_haproxys_words(local: Local) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", local.listen_port))
        taken.listen()

        with pytest.raises(DriverError) as caught:
            local.driver().prepare(V1, "v1:prepare")

    assert caught.value.message.startswith("haproxy would not start with ")
    assert (
        f"cannot bind socket (Address already in use) for [127.0.0.1:{local.listen_port}]"
        in caught.value.message
    )


def test_prometheus_targets_list_every_version_it_runs_with_its_labels(local: Local) -> None:
    """prometheus-targets.json (file_sd_configs) follows the processes: both versions while the canary
    runs, the promoted one alone after, nothing once everything is stopped."""
    targets = local.state_dir / "prometheus-targets.json"
    driver = local.driver()
    deploy_first(driver)
    driver.prepare(V2, "v2:prepare")

    def labels() -> list[tuple[str, str, str, str, str]]:
        return [
            (
                group["targets"][0],
                *(group["labels"][k] for k in ("service", "version", "environment", "slot")),
            )
            for group in json.loads(targets.read_text())
        ]

    ports = {version: run["port"] for version, run in local.state()["processes"].items()}
    assert labels() == [
        (f"127.0.0.1:{ports['1.0.0']}", "hello-service", "1.0.0", "staging", "stable"),
        (f"127.0.0.1:{ports['1.1.0']}", "hello-service", "1.1.0", "staging", "canary"),
    ]

    driver.promote(V2, "v2:promote")
    assert labels() == [(f"127.0.0.1:{ports['1.1.0']}", "hello-service", "1.1.0", "staging", "stable")]

    driver.stop_everything()
    assert json.loads(targets.read_text()) == []
