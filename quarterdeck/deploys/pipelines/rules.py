"""The rules across the steps of a pipeline that a schema cannot say: traffic only grows, in one unit,
up to all of it; nothing is measured before the new version takes traffic; step names are unique. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from quarterdeck.deploys.pipelines.expressions import quoted
from quarterdeck.deploys.pipelines.format import AnalysisStep, DeploySpec, DeployStep, Pipeline


@dataclass(frozen=True)
class StepProblem:
    """A problem a schema cannot see, at `path` (e.g. ("steps", 3, "deploy", "weight"))."""

    path: tuple[str | int, ...]
    message: str


def _unit(spec: DeploySpec) -> str:
    return "weight" if spec.weight is not None else "instances"


def _amount(spec: DeploySpec) -> str:
    return f"{spec.weight}%" if spec.weight is not None else f"{spec.instances} instances"


def step_problems(pipeline: Pipeline) -> list[StepProblem]:
    """What is wrong across the steps: traffic only grows, in one unit, up to all of it, and nothing is
    measured before the new version takes traffic; step names are unique."""
    problems: list[StepProblem] = []
    deploys = [
        (index, step.deploy) for index, step in enumerate(pipeline.steps) if isinstance(step, DeployStep)
    ]
    if not deploys:
        return [
            StepProblem(
                ("steps",), "no deploy step: add one that sends all traffic, `- deploy: {weight: 100}`"
            )
        ]
    first_unit = _unit(deploys[0][1])
    previous: tuple[int, DeploySpec] | None = None
    for index, spec in deploys:
        unit = _unit(spec)
        if unit != first_unit:
            problems.append(
                StepProblem(
                    ("steps", index, "deploy", unit),
                    f"steps[{deploys[0][0]}] counts by {first_unit}; every deploy step of a pipeline counts "
                    "the same way",
                )
            )
        elif previous is not None and spec.amount < previous[1].amount:
            problems.append(
                StepProblem(
                    ("steps", index, "deploy", unit),
                    f"{_amount(spec)} is less than the {_amount(previous[1])} of steps[{previous[0]}]; "
                    "traffic only grows from step to step (a failure rolls back by itself)",
                )
            )
        previous = (index, spec)
    last_index, last = deploys[-1]
    if not last.full and _unit(last) == first_unit:
        full = "weight: 100" if last.weight is not None else "instances: all"
        problems.append(
            StepProblem(
                ("steps", last_index, "deploy", _unit(last)),
                f"the last deploy step sends {_amount(last)}; it must reach {full}",
            )
        )
    first_deploy = deploys[0][0]
    for index, step in enumerate(pipeline.steps[:first_deploy]):
        if isinstance(step, AnalysisStep):
            problems.append(
                StepProblem(
                    ("steps", index, "analysis"),
                    "an analysis before the first deploy step has no new version to measure",
                )
            )
    seen: dict[str, int] = {}
    for index, step in enumerate(pipeline.steps):
        if step.title is None:
            continue
        if step.title in seen:
            problems.append(
                StepProblem(
                    ("steps", index, step.kind, "name"),
                    f"{quoted(step.title)} already names steps[{seen[step.title]}]; step names are unique",
                )
            )
        seen.setdefault(step.title, index)
    return problems
