"""The `command` driver runs real processes: values land in argv one argument each (no shell unless
asked), a bad placeholder is refused when the configuration loads, a command past its timeout has its
process group killed, a failure carries the output's tail, output is bounded, and a key runs once.
Also the drivers file (QD_DEPLOY_DRIVERS) that picks a driver per service and environment."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.deploys.drivers import (
    DriverConfigError,
    DriverContext,
    DriverError,
    StepLog,
    StepTarget,
    load_drivers,
)
from quarterdeck.deploys.drivers.command import CommandDriver
from quarterdeck.deploys.drivers.processes import start_ticks
from quarterdeck.errors import NotFound

PY = sys.executable
PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"
TARGET = StepTarget(
    "checkout", "staging", "1.4.2", image="registry.example/checkout:1.4.2", baseline_version="1.4.1"
)

Make = Callable[[Mapping[str, Any]], CommandDriver]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    def build(config: Mapping[str, Any]) -> CommandDriver:
        context = DriverContext(
            name="command",
            state_dir=tmp_path / "state" / "command",
            base_dir=tmp_path,
            where="drivers.yaml:3, drivers[0]",
            clock=SystemClock(),
        )
        return CommandDriver.from_config(config, context)

    return build


def printed_json(lines: tuple[str, ...]) -> Any:
    return json.loads(next(line for line in lines if line.startswith("[") and not line.startswith("[time")))


def test_each_value_is_one_argument_whatever_it_holds(make: Make) -> None:
    driver = make(
        {
            "set_traffic": [
                PY,
                "-c",
                PRINT_ARGV,
                "{service}",
                "{weight}",
                "{version}",
                "{image}",
                "{vars.note}",
                "x{weight}%",
            ]
        }
    )
    target = StepTarget(
        "checkout", "staging", "1.0 ; rm -rf /", image="a b", variables={"note": "it's $HOME `id`"}
    )

    result = driver.set_traffic(target, 10, "deploy:1:step:2")

    assert result.applied
    assert printed_json(result.log) == ["checkout", "10", "1.0 ; rm -rf /", "a b", "it's $HOME `id`", "x10%"]
    assert result.log[0].startswith("$ ")  # the command as run, shell-quoted for reading


def test_with_shell_true_values_are_quoted_for_the_shell(make: Make, tmp_path: Path) -> None:
    driver = make({"shell": True, "prepare": "printf '%s\\n' {version} {service}"})
    target = StepTarget("checkout", "staging", f"x; touch {tmp_path}/pwned")

    result = driver.prepare(target, "k")

    assert f"x; touch {tmp_path}/pwned" in result.log
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # a misspelt variable is named, with where it is
        (
            {"prepare": ["echo", "{sevrice}"]},
            "drivers.yaml:3, drivers[0], config.prepare[1]: unknown variable {sevrice}",
        ),
        # status changes nothing: it has no weight to name
        ({"status": ["echo", "{weight}"]}, "config.status[1]: unknown variable {weight}"),
        # formats are not templates' business
        ({"promote": ["echo", "{weight:03d}"]}, "{weight:03d} has a format"),
        # a string is a shell command: it needs the user to say so
        ({"rollback": "kubectl argo rollouts abort {service}"}, "write the command as a list of arguments"),
        ({"prepare": [["echo", "a"], ["echo", "{nope}"]]}, "config.prepare[1][1]: unknown variable {nope}"),
        ({}, "needs at least one command"),
        ({"prepare": ["true"], "timeout_seconds": 0}, "config.timeout_seconds"),
        ({"prepare": ["true"], "helm": ["x"]}, "config.helm: is not a setting of this driver"),
    ],
)
def test_a_bad_configuration_is_refused_when_it_loads(
    make: Make, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(DriverConfigError) as caught:
        make(config)
    assert message in caught.value.message


def test_a_value_the_step_does_not_have_fails_the_step_naming_it(make: Make) -> None:
    driver = make({"prepare": ["echo", "{instances}"]})

    with pytest.raises(
        DriverError, match=r"config.prepare uses \{instances\}, which this step has no value for"
    ):
        driver.prepare(TARGET, "k")


def test_a_command_past_its_timeout_has_its_process_group_killed(make: Make) -> None:
    driver = make(
        {
            "prepare": ["sh", "-c", "sleep 60 & echo child=$!; wait"],
            "timeouts": {"prepare": 1},
            "kill_grace_seconds": 1,
        }
    )
    started = time.monotonic()

    with pytest.raises(DriverError) as caught:
        driver.prepare(TARGET, "k")

    assert time.monotonic() - started < 5
    error = caught.value
    assert error.code == "deploys.command_timeout"
    assert error.message == (
        "prepare for checkout 1.4.2 in staging: `sh` timed out after 1 s and its process group was killed"
    )
    assert any(
        line.startswith("[timed out after 1 s: sending SIGTERM to its process group") for line in error.log
    )
    assert error.log[-1] == "[process group killed]"
    child = int(next(line for line in error.log if line.startswith("child=")).removeprefix("child="))
    deadline = time.monotonic() + 5
    while start_ticks(child) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert start_ticks(child) is None, "the background sleep outlived its group's kill"
    # A failed step records no key: a retry runs it again.
    assert driver.ledger.find("k") is None


def test_a_non_zero_exit_fails_the_step_with_the_last_lines(make: Make) -> None:
    script = (
        "for i in $(seq 1 40); do echo line $i; done; echo 'Error: rollout checkout not found' >&2; exit 3"
    )
    driver = make({"rollback": ["sh", "-c", script]})

    with pytest.raises(DriverError) as caught:
        driver.rollback(TARGET, "k")

    error = caught.value
    assert error.code == "deploys.command_failed"
    assert error.message == (
        "rollback for checkout 1.4.2 in staging: `sh` exited with code 3: Error: rollout checkout not found"
    )
    assert error.log[-3:] == ("line 39", "line 40", "Error: rollout checkout not found")
    assert error.details == {"log_tail": list(error.log[-20:])}


def test_later_commands_do_not_run_after_a_failure(make: Make, tmp_path: Path) -> None:
    marker = tmp_path / "second-ran"
    driver = make({"promote": [["false"], ["touch", str(marker)]]})

    with pytest.raises(DriverError, match="`false` exited with code 1"):
        driver.promote(TARGET, "k")
    assert not marker.exists()


def test_output_is_bounded_and_keeps_its_tail(make: Make) -> None:
    loud = "import sys; [print('line %d' % i, file=sys.stderr if i % 2 else sys.stdout) for i in range(5000)]"
    driver = make({"prepare": [PY, "-u", "-c", loud]})

    log = driver.prepare(TARGET, "k").log

    assert len(log) == 1001
    assert log[0].startswith("[4001 earlier lines dropped")
    assert log[-2:] == ("line 4998", "line 4999")
    assert sum(len(line) + 1 for line in log) <= 256 * 1024 + 200


def test_a_long_line_and_many_bytes_stay_within_the_limits(make: Make) -> None:
    big = "print('x' * 100_000); [print('y' * 3000) for _ in range(200)]; print('last')"
    driver = make({"prepare": [PY, "-c", big]})

    log = driver.prepare(TARGET, "k").log

    assert log[-1] == "last"
    assert sum(len(line.encode()) + 1 for line in log[1:]) <= 256 * 1024
    assert log[0].startswith("[") and "earlier lines dropped" in log[0]


def test_the_same_key_runs_its_commands_once(make: Make, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    driver = make(
        {"set_traffic": ["sh", "-c", f'echo "$1 $2" >> {calls}', "sh", "{idempotency_key}", "{weight}"]}
    )

    first = driver.set_traffic(TARGET, 10, "deploy:7:step:2")
    again = driver.set_traffic(TARGET, 10, "deploy:7:step:2")
    other = driver.set_traffic(TARGET, 50, "deploy:7:step:3")

    assert calls.read_text().splitlines() == ["deploy:7:step:2 10", "deploy:7:step:3 50"]
    assert (first.applied, again.applied, other.applied) == (True, False, True)
    assert again.log[0].startswith("key deploy:7:step:2 was applied at ")
    assert [(r.key, r.effect) for r in driver.ledger.records()] == [
        ("deploy:7:step:2", "set_traffic checkout 1.4.2 in staging: 10 %"),
        ("deploy:7:step:3", "set_traffic checkout 1.4.2 in staging: 50 %"),
    ]


def test_a_new_driver_over_the_same_state_remembers_applied_keys(make: Make, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    config = {"promote": ["sh", "-c", f"echo ran >> {calls}"]}

    make(config).promote(TARGET, "deploy:8:step:9")
    assert make(config).promote(TARGET, "deploy:8:step:9").applied is False
    assert calls.read_text() == "ran\n"


def test_a_key_names_one_effect(make: Make) -> None:
    driver = make({"set_traffic": ["true"]})
    driver.set_traffic(TARGET, 10, "deploy:1:step:2")

    with pytest.raises(DriverError) as caught:
        driver.set_traffic(TARGET, 50, "deploy:1:step:2")
    assert caught.value.code == "deploys.key_reused"
    assert "was used for `set_traffic checkout 1.4.2 in staging: 10 %`" in caught.value.message


def test_only_allowed_environment_variables_reach_the_command(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QD_TEST_SECRET", "hunter2")
    monkeypatch.setenv("KUBECONFIG", "/etc/kube/config")
    show = "import json, os; print(json.dumps(dict(os.environ)))"
    driver = make(
        {"prepare": [PY, "-c", show], "pass_env": ["PATH", "KUBECONFIG"], "env": {"MODE": "canary"}}
    )

    env = json.loads(next(line for line in driver.prepare(TARGET, "k").log if line.startswith("{")))

    assert "QD_TEST_SECRET" not in env
    assert env["KUBECONFIG"] == "/etc/kube/config"
    assert env["MODE"] == "canary"
    assert (env["QD_SERVICE"], env["QD_VERSION"], env["QD_WEIGHT"], env["QD_IDEMPOTENCY_KEY"]) == (
        "checkout",
        "1.4.2",
        "0",
        "k",
    )
    assert env["QD_STEP"] == "prepare"


def test_a_missing_command_is_a_one_line_error(make: Make) -> None:
    driver = make({"prepare": ["qd-no-such-command", "{service}"]})

    with pytest.raises(DriverError, match=r"^command `qd-no-such-command` is not found"):
        driver.prepare(TARGET, "k")


def test_status_is_the_status_commands_verdict(make: Make) -> None:
    healthy = make({"status": ["sh", "-c", 'echo "rollout $1: Healthy"', "sh", "{service}"]}).status(TARGET)
    broken = make({"status": ["sh", "-c", "echo Degraded; exit 1"]}).status(TARGET)
    unknown = make({"prepare": ["true"]}).status(TARGET)

    assert (healthy.healthy, healthy.log[-1]) == (True, "rollout checkout: Healthy")
    assert (broken.healthy, broken.log[-1]) == (False, "Degraded")
    assert unknown.healthy is None
    assert healthy.slots == ()


def test_an_unconfigured_method_does_nothing_and_says_so(make: Make) -> None:
    result = make({"set_traffic": ["true"]}).promote(TARGET, "k")
    assert result.log == ("no promote command is configured: nothing to run",)


def test_the_step_log_completes_lines_and_characters_split_across_chunks() -> None:
    log = StepLog()
    for chunk in (b"caf", b"\xc3", b"\xa9 ok\nsec", b"ond\r\n", b"no newline"):
        log.write_bytes(chunk)
    log.close()

    assert log.lines() == ("café ok", "second", "no newline")


# ---------------------------------------------------------------- the drivers file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deploy-drivers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_first_matching_rule_picks_the_driver(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "drivers:\n"
        "  - service: [checkout, 'pay*']\n"
        "    environment: production-*\n"
        "    driver: command\n"
        "    config: {promote: [echo, prod]}\n"
        "  - driver: command\n"
        "    config: {promote: [echo, elsewhere]}\n",
    )

    drivers = load_drivers(path, state_root=tmp_path / "state", clock=SystemClock())

    assert drivers.rule_for("payments-api", "production-eu").where == f"{path}:2, drivers[0]"
    assert drivers.rule_for("checkout", "staging").where == f"{path}:6, drivers[1]"
    result = drivers.driver_for("checkout", "production-us").promote(TARGET, "k")
    assert result.log[-1] == "prod"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "drivers:\n  - driver: kubernetes\n",
            "{path}:2, drivers[0]: no deploy driver is named 'kubernetes'; known: command, local",
        ),
        (
            "drivers:\n  - driver: command\n    config: {prepare: [echo, '{sevrice}']}\n",
            "{path}:2, drivers[0], config.prepare[1]: unknown variable {sevrice}",
        ),
        (
            "drivers:\n  - driver: command\n    services: [a]\n",
            "{path}:2, drivers[0], services: is not a field of a rule",
        ),
        ("drivers: {}\n", "{path}: expected `drivers:` with a list of rules"),
        ("drivers:\n  - driver: command\n   bad: indent\n", "{path}:3: not valid YAML"),
    ],
)
def test_a_bad_drivers_file_is_refused_naming_file_line_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(DriverConfigError) as caught:
        load_drivers(path, state_root=tmp_path / "state", clock=SystemClock())
    assert caught.value.message.startswith(message.replace("{path}", str(path)))


def test_without_a_rule_for_it_a_service_has_no_driver(tmp_path: Path) -> None:
    path = write(
        tmp_path, "drivers:\n  - service: checkout\n    driver: command\n    config: {promote: [echo]}\n"
    )
    drivers = load_drivers(path, state_root=tmp_path, clock=SystemClock())
    nothing = load_drivers(None, state_root=tmp_path, clock=SystemClock())

    with pytest.raises(NotFound, match=f"{path} has no rule for service 'ledger' in environment 'staging'"):
        drivers.driver_for("ledger", "staging")
    with pytest.raises(NotFound, match="no deploy drivers are configured: set QD_DEPLOY_DRIVERS"):
        nothing.driver_for("ledger", "staging")


def test_settings_refuse_a_drivers_file_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"QD_DEPLOY_DRIVERS names .*missing\.yaml', which is not a file"):
        Settings(deploy_drivers=tmp_path / "missing.yaml")
    assert Settings(deploy_drivers=write(tmp_path, "drivers: []\n")).deploy_state_dir.name == "deploys"
