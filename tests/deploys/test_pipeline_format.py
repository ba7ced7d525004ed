"""The pipeline format, without a database: every step type parses, every bound is refused with the file,
line, step and field named, placeholders and conditions are checked, YAML bombs are refused by the
catalog's bounded loader, and the shipped defaults pass the rules and the served JSON Schema."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from quarterdeck.catalog.descriptors import read_descriptor_file
from quarterdeck.deploys.pipelines.expressions import (
    fill_placeholders,
    parse_condition,
    parse_duration,
)
from quarterdeck.deploys.pipelines.format import (
    AnalysisStep,
    ApprovalStep,
    DeployStep,
    NotifyStep,
    RunStep,
    TeamApprover,
    TeamRoleApprover,
    WaitStep,
    pipeline_json_schema,
)
from quarterdeck.deploys.pipelines.gates import lost_gates
from quarterdeck.deploys.pipelines.loading import (
    DEFAULTS_FILE,
    product_defaults,
    read_defaults,
    read_pipeline_file,
    read_pipeline_text,
)
from quarterdeck.errors import Invalid
from tests.conftest import ROOT

FILE = "pipelines/tier1.yaml"
EVERY_STEP = """\
apiVersion: quarterdeck/v1
kind: Pipeline
name: every-step
description: One step of each type.
applies_to: {tiers: [1, 2], environment_kind: production}
on_failure: pause
steps:
  - approval: {name: second person, who: {team_role: owner}, two_person: true}
  - approval: {who: {team: sre}}
  - deploy: {weight: 1}
  - analysis:
      name: canary
      interval: 5m
      count: 6
      failure_limit: 1
      inconclusive_limit: 2
      queries:
        error-rate:
          query: sum(rate(errors{service="{service}",env="{env}",version="{version}"}[5m]))
          condition: "< 0.01"
        latency-p99:
          query: p99{service="{service}",version="{version}"} / p99{version="{baseline_version}"}
          condition: "<= baseline * 1.1"
  - wait: {duration: 1h30m, skippable: true}
  - wait: {bake: tier}
  - notify: {webhook: "https://hooks.example.com/deploys", headers: [ops]}
  - run: {command: ["./smoke-test", "--env", "{env}"], timeout: 90s}
  - deploy: {weight: 100}
"""


def refused(text: str, file: str = FILE) -> list[str]:
    """Every problem of a pipeline file, as the error message lines it: file:line: step: field: message."""
    with pytest.raises(Invalid) as raised:
        read_pipeline_text(text, file)
    assert raised.value.code.startswith("pipelines.")
    return [
        ": ".join(
            str(part)
            for part in (
                f"{d['file']}:{d['line']}" if d["line"] else d["file"],
                d["step"],
                d["field"],
                d["message"],
            )
            if part
        )
        for d in raised.value.details
    ]


def with_steps(*steps: str, head: str = "name: p\n") -> str:
    """A pipeline of these YAML step lines (each `- ...`), ending at 100% unless a step says otherwise."""
    return head + "steps:\n" + "".join(f"  {step}\n" for step in steps)


# ---------------------------------------------------------------- what parses


def test_every_step_type_parses_with_its_fields() -> None:
    pipeline = read_pipeline_text(EVERY_STEP, FILE)

    kinds = [step.kind for step in pipeline.steps]
    assert kinds == ["approval", "approval", "deploy", "analysis", "wait", "wait", "notify", "run", "deploy"]
    first, second, canary, analysis, wait, bake, notify, run, full = pipeline.steps
    assert isinstance(first, ApprovalStep) and isinstance(second, ApprovalStep)
    assert first.approval.who == TeamRoleApprover(team_role="owner") and first.approval.two_person
    assert second.approval.who == TeamApprover(team="sre") and not second.approval.two_person
    assert isinstance(canary, DeployStep) and canary.deploy.weight == 1
    assert isinstance(analysis, AnalysisStep)
    assert (analysis.analysis.interval, analysis.analysis.count, analysis.analysis.seconds) == ("5m", 6, 1800)
    assert list(analysis.analysis.queries) == ["error-rate", "latency-p99"]
    assert isinstance(wait, WaitStep) and (wait.wait.duration, wait.wait.skippable) == ("1h30m", True)
    assert isinstance(bake, WaitStep) and bake.wait.bake == "tier"
    assert isinstance(notify, NotifyStep) and notify.notify.headers == ["ops"]
    assert isinstance(run, RunStep) and run.run.command == ["./smoke-test", "--env", "{env}"]
    assert isinstance(full, DeployStep) and full.deploy.full
    assert (pipeline.on_failure, pipeline.applies_to.tiers) == ("pause", [1, 2])


def test_instances_count_up_to_all_and_defaults_fill_in() -> None:
    pipeline = read_pipeline_text(
        with_steps("- deploy: {instances: 1}", "- deploy: {instances: 5}", "- deploy: {instances: all}"), FILE
    )

    assert [step.deploy.instances for step in pipeline.steps if isinstance(step, DeployStep)] == [1, 5, "all"]
    body = pipeline.body()
    assert (body["apiVersion"], body["kind"], body["on_failure"], body["description"]) == (
        "quarterdeck/v1",
        "Pipeline",
        "rollback",
        "",
    )


def test_a_json_file_is_read_like_yaml(tmp_path: Path) -> None:
    path = tmp_path / "direct.json"
    path.write_text('{"name": "direct", "steps": [{"deploy": {"weight": 100}}]}')

    assert read_pipeline_file(path).name == "direct"


# ---------------------------------------------------------------- what is refused, and where


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # the example of the issue: a condition that is not a comparison, named by its query
        (
            [
                "- deploy: {weight: 1}",
                "- analysis: {queries: {error-rate: {query: 'x{v=\"{version}\"}', condition: '<< 0.01'}}}",
                "- deploy: {weight: 100}",
            ],
            '4: steps[1] (analysis "error-rate"): condition: "<< 0.01" is not a '
            'comparison; write "< 0.01" or "<= baseline * 1.1"',
        ),
        # weights are percentages
        (
            ["- deploy: {weight: 150}"],
            "3: steps[0] (deploy): weight: input should be less than or equal to 100 (it is 150)",
        ),
        # weight or instances, exactly one
        (
            ["- deploy: {weight: 10, instances: 2}", "- deploy: {weight: 100}"],
            "3: steps[0] (deploy): give weight (0-100, percent of traffic) or instances "
            "(a count, or all), not both",
        ),
        (
            ["- deploy: {name: canary}"],
            '3: steps[0] (deploy "canary"): give weight (0-100, percent of traffic) or '
            "instances (a count, or all), one of them",
        ),
        # instance counts are bounded
        (
            ["- deploy: {instances: 1001}", "- deploy: {instances: all}"],
            "3: steps[0] (deploy): instances: instances is a count from 1 to 1000, or all",
        ),
        # durations: written with a unit, at most 24 h
        (
            ["- deploy: {weight: 10}", "- wait: {duration: 25h}", "- deploy: {weight: 100}"],
            '4: steps[1] (wait): duration: "25h" is longer than 24 h, the longest allowed',
        ),
        (
            ["- deploy: {weight: 10}", "- wait: {duration: 30}", "- deploy: {weight: 100}"],
            '4: steps[1] (wait): duration: 30 has no unit; write it as text such as "30s" or "30m"',
        ),
        (
            ["- deploy: {weight: 10}", "- wait: {duration: half an hour}", "- deploy: {weight: 100}"],
            '4: steps[1] (wait): duration: "half an hour" is not a duration; write a '
            'number of hours, minutes and seconds such as "90s", "30m", "2h" or "1h30m"',
        ),
        (
            ["- deploy: {weight: 10}", "- wait: {bake: tier, duration: 5m}", "- deploy: {weight: 100}"],
            '4: steps[1] (wait): give duration (e.g. "30m") or bake: tier, not both',
        ),
        # an analysis: count, interval x count, limits
        (
            [
                "- deploy: {weight: 10}",
                "- analysis: {count: 1001, queries: {e: {query: x, condition: '< 1'}}}",
                "- deploy: {weight: 100}",
            ],
            "4: steps[1] (analysis): count: input should be less than or equal to 1000 (it is 1001)",
        ),
        (
            [
                "- deploy: {weight: 10}",
                "- analysis: {interval: 1h, count: 25, queries: {e: {query: x, condition: '< 1'}}}",
                "- deploy: {weight: 100}",
            ],
            "4: steps[1] (analysis): interval 1h x count 25 runs for 25 h; an analysis runs 24 h at most",
        ),
        (
            [
                "- deploy: {weight: 10}",
                "- analysis: {count: 3, failure_limit: 4, queries: {e: {query: x, condition: '< 1'}}}",
                "- deploy: {weight: 100}",
            ],
            "4: steps[1] (analysis): failure_limit 4 is more than the 3 measurements taken",
        ),
        (
            [
                "- deploy: {weight: 10}",
                "- analysis: {interval: 5s, queries: {e: {query: x, condition: '< 1'}}}",
                "- deploy: {weight: 100}",
            ],
            '4: steps[1] (analysis): interval: "5s" is shorter than the shortest allowed, 10 s',
        ),
        # a relative condition needs {version}, so the query can be run for both versions
        (
            [
                "- deploy: {weight: 10}",
                "- analysis: {queries: {p99: {query: 'p99{s=\"{service}\"}', condition: '<= baseline'}}}",
                "- deploy: {weight: 100}",
            ],
            '4: steps[1] (analysis "p99"): condition: "<= baseline" compares with the '
            "baseline, so the query is run for the new and the live version: it must select by {version}",
        ),
        # approvals name a team role or a team
        (
            ["- approval: {who: {role: admin}}", "- deploy: {weight: 100}"],
            "3: steps[0] (approval): who: who is {team_role: owner} or {team_role: member} "
            "(a role in the service's owning team), or {team: <slug>} (a named team)",
        ),
        (
            ["- approval: {who: {team_role: boss}}", "- deploy: {weight: 100}"],
            "3: steps[0] (approval): who.team_role: input should be 'owner' or 'member' (it is \"boss\")",
        ),
        # notify: http(s) only, no credentials in the file
        (
            ["- notify: {webhook: 'ftp://hooks.example.com/x'}", "- deploy: {weight: 100}"],
            '3: steps[0] (notify): webhook: "ftp://hooks.example.com/x" is not an http:// or https:// URL',
        ),
        (
            ["- notify: {webhook: 'https://bot:hunter2@hooks.example.com/x'}", "- deploy: {weight: 100}"],
            "3: steps[0] (notify): webhook: the URL holds a user name or password; put "
            "credentials in a header set of QD_WEBHOOK_HEADERS and name it under headers",
        ),
        # run: an argument list, never a shell string
        (
            ["- run: {command: './smoke-test --env prod'}", "- deploy: {weight: 100}"],
            "3: steps[0] (run): command: command is a list of arguments, e.g. "
            '["./smoke-test", "--env", "{env}"]; a shell string is not run',
        ),
        (
            ["- run: {command: [./smoke, '{environment}']}", "- deploy: {weight: 100}"],
            "3: steps[0] (run): command[1]: unknown placeholder {environment}; did you "
            "mean {env}? the placeholders are {service}, {env}, {version}, {baseline_version}",
        ),
        # steps: a type each, known keys only
        (
            ["- setWeight: 10", "- deploy: {weight: 100}"],
            "3: steps[0]: a step is a mapping with one of the keys deploy, wait, analysis, "
            "approval, notify or run, e.g. `- deploy: {weight: 10}`",
        ),
        (
            ["- deploy: {weigth: 10}", "- deploy: {weight: 100}"],
            '3: steps[0] (deploy): weigth: unknown key "weigth"; allowed: name, weight, instances',
        ),
        # across steps: traffic grows, in one unit, to all of it; nothing is measured before it moves
        (
            ["- deploy: {weight: 50}", "- deploy: {weight: 10}", "- deploy: {weight: 100}"],
            "4: steps[1] (deploy): weight: 10% is less than the 50% of steps[0]; traffic "
            "only grows from step to step (a failure rolls back by itself)",
        ),
        (
            ["- deploy: {weight: 10}", "- deploy: {weight: 50}"],
            "4: steps[1] (deploy): weight: the last deploy step sends 50%; it must reach weight: 100",
        ),
        (
            ["- deploy: {instances: 2}", "- deploy: {weight: 100}"],
            "4: steps[1] (deploy): weight: steps[0] counts by instances; every deploy "
            "step of a pipeline counts the same way",
        ),
        (
            ["- analysis: {queries: {e: {query: x, condition: '< 1'}}}", "- deploy: {weight: 100}"],
            "3: steps[0] (analysis): an analysis before the first deploy step has no new version to measure",
        ),
        (
            ["- wait: {duration: 5m}"],
            "2: steps: no deploy step: add one that sends all traffic, `- deploy: {weight: 100}`",
        ),
        (
            ["- deploy: {weight: 5, name: a}", "- deploy: {weight: 100, name: a}"],
            '4: steps[1] (deploy "a"): name: "a" already names steps[0]; step names are unique',
        ),
    ],
)
def test_each_bad_step_is_named_by_file_line_step_and_field(steps: list[str], expected: str) -> None:
    assert f"{FILE}:{expected}" in refused(with_steps(*steps))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        # names are short slugs
        ("name: " + "a" * 101, "1: name: string should have at most 100 characters"),
        ("name: Tier One", "1: name: string should match pattern"),
        # applies_to: tiers 1-4, one environment condition
        (
            "name: p\napplies_to: {tiers: [5]}",
            "2: applies_to.tiers[0]: input should be 1, 2, 3 or 4",
        ),
        (
            "name: p\napplies_to: {environment_kind: production, environments: [prod]}",
            "2: applies_to: give environment_kind or environments, not both",
        ),
        (
            "name: p\non_failure: retry",
            "2: on_failure: input should be 'rollback' or 'pause'",
        ),
        ("name: p\nkind: Rollout", "2: kind: input should be 'Pipeline'"),
        (
            "name: p\ncolour: blue",
            '2: colour: unknown key "colour"; allowed: apiVersion',
        ),
    ],
)
def test_each_bad_pipeline_field_is_named(head: str, expected: str) -> None:
    assert any(
        line.startswith(f"{FILE}:{expected}")
        for line in refused(with_steps("- deploy: {weight: 100}", head=head + "\n"))
    )


def test_at_most_fifty_steps() -> None:
    steps = ["- deploy: {weight: 0}"] * 50 + ["- deploy: {weight: 100}"]

    assert refused(with_steps(*steps)) == [
        "pipelines/tier1.yaml:2: steps: list should have at most 50 items after validation, not 51"
    ]


def test_every_problem_is_reported_and_the_message_counts_them() -> None:
    text = with_steps("- deploy: {weight: 150}", "- wait: {duration: 1d}", "- deploy: {weight: 100}")

    with pytest.raises(Invalid) as raised:
        read_pipeline_text(text, FILE)

    assert [(d["step"], d["field"]) for d in raised.value.details] == [
        ("steps[0] (deploy)", "weight"),
        ("steps[1] (wait)", "duration"),
    ]
    assert raised.value.message.endswith("(and 1 more problem)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a billion laughs: refused by the catalog's bounded loader before anything is built
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + "name: p\nsteps: [{deploy: {weight: 100}}]\n",
            "too many YAML nodes once aliases are expanded: the limit is 100000 in one file",
        ),
        # nesting deeper than the loader's 64 levels
        ("name: p\nsteps: " + "[" * 200 + "]" * 200 + "\n", "nesting is too deep: the limit is 64 levels"),
        # a recursive alias
        ("name: &n p\nsteps: &s [*s]\n", "an alias refers to a node that contains it"),
        # broken YAML, with its line
        (
            "name: p\nsteps: [\n",
            "pipelines/tier1.yaml:3: YAML syntax error: did not find expected node content",
        ),
        # two documents
        ("name: p\n---\nname: q\n", "2 YAML documents: a pipeline file holds exactly one pipeline"),
        # not a mapping
        ("- deploy: {weight: 100}\n", "expected a mapping: a pipeline with name and steps"),
    ],
)
def test_hostile_or_broken_yaml_is_refused_with_the_file_named(text: str, expected: str) -> None:
    [problem] = refused(text)

    assert problem.startswith("pipelines/tier1.yaml") and expected in problem


def test_a_file_larger_than_the_loader_allows_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: p\n# " + "x" * (1024 * 1024) + "\n")

    with pytest.raises(Invalid, match="larger than the limit of 1048576 bytes") as raised:
        read_pipeline_file(path)

    assert raised.value.details[0]["file"] == str(path)


# ---------------------------------------------------------------- the small languages


@pytest.mark.parametrize(
    ("text", "value", "baseline", "holds"),
    [
        ("< 0.01", 0.005, None, True),  # absolute, below
        ("< 0.01", 0.01, None, False),  # absolute, at the threshold
        ("<= 250", 250, None, True),
        (">= 0.99", 0.5, None, False),
        ("<= baseline * 1.1", 1.05, 1.0, True),  # relative, within 10%
        ("<= baseline * 1.1", 1.2, 1.0, False),
        ("< baseline + 5", 104, 100, True),
        ("<= baseline * 1.1", 1.0, None, None),  # no baseline (nothing live before): inconclusive
        ("< 0.01", math.nan, None, None),  # no data: inconclusive
    ],
)
def test_conditions_compare_a_measurement_with_a_threshold_or_the_baseline(
    text: str, value: float, baseline: float | None, holds: bool | None
) -> None:
    assert parse_condition(text).holds(value, baseline) is holds


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_placeholders_are_filled_and_label_matchers_are_left_alone() -> None:
    query = 'sum(rate(x{service="{service}",code=~"5.."}[5m])) / y{version="{version}"}'

    filled = fill_placeholders(query, {"service": "checkout", "version": "1.2.0"})

    assert filled == 'sum(rate(x{service="checkout",code=~"5.."}[5m])) / y{version="1.2.0"}'


def test_the_graphs_double_brace_spelling_is_refused_with_the_right_one() -> None:
    text = with_steps(
        "- deploy: {weight: 10}",
        "- analysis: {queries: {e: {query: 'x{service=\"{{service}}\"}', condition: '< 1'}}}",
        "- deploy: {weight: 100}",
    )

    assert refused(text) == [
        'pipelines/tier1.yaml:4: steps[1] (analysis "e"): query: {{service}} uses double braces; pipeline '
        "queries and commands write {service}"
    ]


# ---------------------------------------------------------------- what ships


def test_the_shipped_defaults_load_and_cover_every_tier_in_and_outside_production() -> None:
    defaults = product_defaults()

    assert [p.name for p in defaults.pipelines] == [
        "tier-1-production",
        "tier-2-production",
        "tier-3-production",
        "direct",
    ]
    assert [defaults.bake_times.seconds(tier) for tier in (1, 2, 3, 4, None)] == [1800, 900, 300, 0, 300]
    for tier in (1, 2, 3, 4, None):
        for production in (True, False):
            assert any(
                p.applies_to.mismatch(service="s", tier=tier, environment="e", production=production) is None
                for p in defaults.pipelines
            ), (tier, production)
    tier1 = defaults.pipelines[0]
    weights = [step.deploy.weight for step in tier1.steps if isinstance(step, DeployStep)]
    assert weights == [1, 10, 50, 100]
    assert isinstance(tier1.steps[0], ApprovalStep) and tier1.steps[0].approval.two_person


def test_a_broken_defaults_file_is_refused_with_the_pipeline_named() -> None:
    text = (ROOT / "quarterdeck/deploys/pipelines" / DEFAULTS_FILE).read_text()
    broken = text.replace("- deploy: {weight: 50}", "- deploy: {weight: 5}")

    with pytest.raises(Invalid, match=r"defaults.yaml:\d+: pipelines\[0\] steps\[5\] \(deploy\): weight: 5%"):
        read_defaults(broken, "defaults.yaml")


def test_the_json_schema_accepts_the_shipped_defaults_and_refuses_what_the_models_refuse() -> None:
    validator = jsonschema_rs.Draft202012Validator(pipeline_json_schema())
    shipped = yaml.safe_load((ROOT / "quarterdeck/deploys/pipelines" / DEFAULTS_FILE).read_text())

    for pipeline in shipped["pipelines"]:
        assert validator.is_valid(pipeline), list(validator.iter_errors(pipeline))
    assert validator.is_valid(yaml.safe_load(EVERY_STEP))
    bad: list[dict[str, Any]] = [
        {"name": "p", "steps": [{"deploy": {"weight": 150}}]},
        {"name": "p", "steps": [{"deploy": {"weight": 10, "instances": 2}}]},
        {"name": "p", "steps": [{"setWeight": 10}]},
        {"name": "p", "steps": [{"wait": {"duration": "soon"}}]},
        {"name": "p", "steps": [{"run": {"command": "./x --y"}}]},
        {"name": "p", "steps": []},
        {"name": "p", "colour": "blue", "steps": [{"deploy": {"weight": 100}}]},
    ]
    for body in bad:
        assert not validator.is_valid(body), body


def test_removing_or_loosening_an_approval_loses_its_gate() -> None:
    def pipeline(*steps: str) -> Any:
        return read_pipeline_text(with_steps(*steps), FILE)

    strict = pipeline("- approval: {who: {team_role: member}, two_person: true}", "- deploy: {weight: 100}")

    assert lost_gates(strict, strict) == []
    assert (
        lost_gates(
            strict,
            pipeline("- approval: {who: {team_role: owner}, two_person: true}", "- deploy: {weight: 100}"),
        )
        == []
    )
    assert len(lost_gates(strict, pipeline("- deploy: {weight: 100}"))) == 1  # removed
    assert (
        len(lost_gates(strict, pipeline("- approval: {who: {team_role: member}}", "- deploy: {weight: 100}")))
        == 1
    )
    late = pipeline(
        "- deploy: {weight: 10}",
        "- approval: {who: {team_role: member}, two_person: true}",
        "- deploy: {weight: 100}",
    )
    assert [gate.words() for gate in lost_gates(strict, late)] == [
        "the approval by a member of the owning team, a second person, before any traffic"
    ]


def test_every_example_in_the_documentation_is_a_valid_pipeline() -> None:
    text = (ROOT / "docs" / "pipelines.md").read_text()
    examples = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)

    assert len(examples) == 4
    names = [
        read_pipeline_text(example, f"docs/pipelines.md example {n}").name
        for n, example in enumerate(examples)
    ]
    assert names == ["checkout-careful", "checkout-team", "worker-by-instances", "staging-bake"]


def test_the_catalog_import_skips_a_pipeline_file_beside_the_descriptors() -> None:
    read = read_descriptor_file("pipelines/tier1.yaml", EVERY_STEP)

    assert (read.outcome.value, read.problems) == ("skipped", [])
    assert [notice.message for notice in read.notices] == [
        "kind Pipeline is read by `quarterdeck pipelines apply`, not the catalog; skipped"
    ]
