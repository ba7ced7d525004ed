"""The demo's background services for `make run`, under var/demo/: a Prometheus that scrapes every
version of the example service the local deploy driver runs, a registry holding the example service's
images, and a small sender of requests through the local driver's HAProxy frontends (so the graphs
and the canary analyses have traffic to measure).

    python scripts/demo_services.py start     # (re)starts them; `make run` calls it
    python scripts/demo_services.py stop      # stops them and every process the local driver runs
    python scripts/demo_services.py status
    python scripts/demo_services.py prometheus-config --out FILE   # the configuration `start` writes

Each runs in a session of its own and outlives this script; var/demo/<name>.pid holds its pid and
start time, so `start` run again stops the one before first and a reused pid is never taken for it.
A program that is not installed is skipped with one line saying what to install (scripts/demo-deps.sh
installs it as root); the portal works without it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from quarterdeck.clock import SystemClock
from quarterdeck.deploys.drivers import load_drivers
from quarterdeck.deploys.drivers.base import DriverError
from quarterdeck.deploys.drivers.local import LocalDriver
from quarterdeck.deploys.drivers.local_state import TARGETS_FILE, LocalState
from quarterdeck.deploys.drivers.processes import Running, is_running, spawn, stop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_registry import PushError, push

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "var" / "demo"
PROMETHEUS_ADDRESS = ("127.0.0.1", 9095)
REGISTRY_ADDRESS = ("127.0.0.1", 5055)
HELLO_REPOSITORY = "developer-experience/hello-service"
HELLO_VERSIONS = ["1.0.0", "1.1.0", "1.2.0-bad"]
REQUESTS_PER_SECOND = 8
"""Requests the traffic sender sends each second through each HAProxy frontend of the local driver."""
SCRAPE_INTERVAL = "2s"
READY_SECONDS = 20.0


@dataclass(frozen=True)
class Paths:
    demo: Path
    state_dir: Path
    """The local driver's state folder (QD_DEPLOY_STATE_DIR/local)."""

    @property
    def targets(self) -> Path:
        return self.state_dir / TARGETS_FILE


def say(line: str) -> None:
    print(f"demo: {line}", flush=True)


def address(where: tuple[str, int]) -> str:
    return f"{where[0]}:{where[1]}"


def port_taken(where: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(where) == 0


# ---------------------------------------------------------------------- pid files


def read_pid(path: Path) -> Running | None:
    try:
        pid, started = path.read_text().split()
        return Running(int(pid), int(started))
    except (OSError, ValueError):
        return None


def stop_named(paths: Paths, name: str) -> None:
    pid_file = paths.demo / f"{name}.pid"
    process = read_pid(pid_file)
    if process is not None and stop(process, timeout=10):
        say(f"stopped {name} (pid {process.pid})")
    pid_file.unlink(missing_ok=True)


def start_named(paths: Paths, name: str, argv: list[str], *, cwd: Path) -> Running:
    process = spawn(argv, cwd=cwd, env=dict(os.environ), log_path=paths.demo / f"{name}.log")
    (paths.demo / f"{name}.pid").write_text(f"{process.pid} {process.started}\n")
    return process


def wait_until(
    process: Running, what: str, log: Path, ready: Callable[[], bool], timeout: float = READY_SECONDS
) -> bool:
    """Polls `ready` until it holds; False (saying why, with the log's last line) when the process exits
    or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(process):
            say(f"{what} exited at start: {last_lines(log)} (log: {log})")
            return False
        try:
            if ready():
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    say(f"{what} was not ready after {timeout:g} s: {last_lines(log)} (log: {log})")
    return False


def last_lines(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return " | ".join(lines[-2:])[-400:]


# ---------------------------------------------------------------------- Prometheus


def prometheus_config(targets: Path) -> str:
    """Prometheus's configuration: every version process the local driver lists in `targets` (file-based
    service discovery), its own labels kept (service, version, code), every SCRAPE_INTERVAL."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": "local-deploys",
                "honor_labels": True,
                # Read again when it changes (a watch on its folder) and every refresh_interval.
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "15s"}],
            }
        ],
    }
    header = "# Written by scripts/demo_services.py: the demo's Prometheus (make run).\n"
    return header + json.dumps(config, indent=2) + "\n"


def start_prometheus(paths: Paths) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        say("prometheus is not installed: no graphs (install it: sudo bash scripts/demo-deps.sh)")
        return
    if port_taken(PROMETHEUS_ADDRESS):
        say(f"{address(PROMETHEUS_ADDRESS)} is taken by another program: the demo's Prometheus is not run")
        return
    folder = paths.demo / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    # Prometheus watches the targets file's folder: it must exist before the local driver's first deploy.
    paths.targets.parent.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(prometheus_config(paths.targets))
    process = start_named(
        paths,
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            "--storage.tsdb.retention.time=7d",
            f"--web.listen-address={address(PROMETHEUS_ADDRESS)}",
            "--log.level=warn",
        ],
        cwd=folder,
    )
    url = f"http://{address(PROMETHEUS_ADDRESS)}"
    with httpx.Client(timeout=1) as client:
        ready = wait_until(
            process,
            "prometheus",
            paths.demo / "prometheus.log",
            lambda: client.get(f"{url}/-/ready").status_code == 200,
        )
    if ready:
        say(f"Prometheus on {url}, scraping the versions the local driver runs ({paths.targets})")


# ---------------------------------------------------------------------- registry


def registry_config(storage: Path) -> str:
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": address(REGISTRY_ADDRESS), "secret": "quarterdeck-demo-not-secret"},
    }
    return json.dumps(config, indent=1) + "\n"


def start_registry(paths: Paths) -> None:
    binary = shutil.which("docker-registry")
    if binary is None:
        say("docker-registry is not installed: no images (install it: sudo bash scripts/demo-deps.sh)")
        return
    if port_taken(REGISTRY_ADDRESS):
        say(f"{address(REGISTRY_ADDRESS)} is taken by another program: the demo's registry is not started")
        return
    folder = paths.demo / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(registry_config(folder / "data"))
    process = start_named(paths, "registry", [binary, "serve", str(config)], cwd=folder)
    url = f"http://{address(REGISTRY_ADDRESS)}"
    with httpx.Client(timeout=1) as client:
        up = wait_until(
            process,
            "docker-registry",
            paths.demo / "registry.log",
            lambda: client.get(f"{url}/v2/").status_code == 200,
        )
    if not up:
        return
    try:
        push(url, HELLO_REPOSITORY, HELLO_VERSIONS)
    except PushError as exc:
        say(f"pushing the example images failed: {exc}")
        return
    say(f"registry on {url} with {HELLO_REPOSITORY} {', '.join(HELLO_VERSIONS)}")


# ---------------------------------------------------------------------- traffic


def frontends(state_dir: Path) -> list[tuple[str, int]]:
    """The HAProxy frontends (bind, port) of every service the local driver runs something for."""
    try:
        state = LocalState.load(state_dir / "state.json")
    except DriverError:
        return []
    return [(svc.bind, svc.listen_port) for svc in state.services.values() if svc.processes]


def send_one(where: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*where, timeout=2)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
    except OSError:
        pass
    finally:
        conn.close()


def traffic(state_dir: Path) -> int:
    """Sends REQUESTS_PER_SECOND requests a second through each frontend, for ever (until SIGTERM)."""
    pause = 1.0 / REQUESTS_PER_SECOND
    while True:
        started = time.monotonic()
        threads = [threading.Thread(target=send_one, args=(where,)) for where in frontends(state_dir)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(max(0.0, pause - (time.monotonic() - started)))


def start_traffic(paths: Paths) -> None:
    start_named(
        paths,
        "traffic",
        [sys.executable, str(Path(__file__).resolve()), "traffic", "--state-dir", str(paths.state_dir)],
        cwd=ROOT,
    )
    say(
        f"sending {REQUESTS_PER_SECOND} requests a second through each frontend of the local driver's HAProxy"
    )


# ---------------------------------------------------------------------- commands


def stop_background(paths: Paths) -> None:
    for name in ("traffic", "prometheus", "registry"):
        stop_named(paths, name)


def stop_local_driver(drivers_file: Path | None, state_root: Path) -> None:
    """Stops every version process and the haproxy of each local driver the drivers file names."""
    if drivers_file is None or not drivers_file.is_file():
        return
    drivers = load_drivers(drivers_file, state_root=state_root, clock=SystemClock())
    done: set[Path] = set()
    for rule in drivers.rules:
        driver = rule.driver
        if isinstance(driver, LocalDriver) and driver.state_dir not in done:
            done.add(driver.state_dir)
            driver.stop_everything()
            say(f"stopped what the local driver ran from {driver.state_dir}")


def status(paths: Paths) -> None:
    for name in ("prometheus", "registry", "traffic"):
        process = read_pid(paths.demo / f"{name}.pid")
        running = process is not None and is_running(process)
        say(f"{name}: {'running, pid ' + str(process.pid) if running and process else 'not running'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The demo's background services for `make run`.")
    parser.add_argument("command", choices=["start", "stop", "status", "traffic", "prometheus-config"])
    parser.add_argument("--demo-dir", type=Path, default=DEMO_DIR)
    parser.add_argument(
        "--state-root",
        type=Path,
        default=Path(os.environ.get("QD_DEPLOY_STATE_DIR", str(ROOT / "var" / "deploys"))),
        help="QD_DEPLOY_STATE_DIR: the deploy drivers' state folders",
    )
    parser.add_argument("--state-dir", type=Path, help="the local driver's state folder (traffic)")
    parser.add_argument(
        "--drivers",
        type=Path,
        default=Path(os.environ["QD_DEPLOY_DRIVERS"]) if os.environ.get("QD_DEPLOY_DRIVERS") else None,
        help="QD_DEPLOY_DRIVERS: whose local drivers `stop` stops",
    )
    parser.add_argument("--out", type=Path, help="where prometheus-config writes")
    args = parser.parse_args(argv)
    paths = Paths(args.demo_dir.resolve(), (args.state_dir or args.state_root / "local").resolve())
    paths.demo.mkdir(parents=True, exist_ok=True)
    if args.command == "start":
        stop_background(paths)
        start_registry(paths)
        start_prometheus(paths)
        start_traffic(paths)
    elif args.command == "stop":
        stop_background(paths)
        try:
            stop_local_driver(args.drivers, args.state_root.resolve())
        except DriverError as exc:
            say(exc.message)
    elif args.command == "status":
        status(paths)
    elif args.command == "traffic":
        return traffic(paths.state_dir)
    else:
        text = prometheus_config(paths.targets)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
