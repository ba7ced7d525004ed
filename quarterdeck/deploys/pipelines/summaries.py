"""Each step of a pipeline written out for people: what the page, `pipelines show` and the API's
`steps` say. Pure."""

from __future__ import annotations

from quarterdeck.deploys.pipelines.expressions import duration_words, parse_duration
from quarterdeck.deploys.pipelines.format import (
    AnalysisStep,
    ApprovalStep,
    BakeTimes,
    DeploySpec,
    DeployStep,
    NotifyStep,
    Pipeline,
    RunStep,
    TeamApprover,
    WaitSpec,
    WaitStep,
)
from quarterdeck.deploys.pipelines.schemas import QueryView, StepView


def _deploy(spec: DeploySpec) -> str:
    if spec.weight == 100:
        return "Send all of the traffic to the new version"
    if spec.weight is not None:
        return f"Send {spec.weight}% of the traffic to the new version"
    if spec.instances == "all":
        return "Run the new version on every instance"
    return f"Run the new version on {spec.instances} instance{'s' if spec.instances != 1 else ''}"


def _tier_words(tier: int | None) -> str:
    return f"tier {tier}" if tier is not None else "services without a tier"


def _wait(spec: WaitSpec, tier: int | None, bake: BakeTimes) -> tuple[str, int, list[str]]:
    details = ["the deployer may skip it"] if spec.skippable else []
    if spec.duration is not None:
        seconds = parse_duration(spec.duration)
        return f"Wait {duration_words(seconds)}", seconds, details
    seconds = bake.seconds(tier)
    if seconds == 0:
        return f"No wait: the bake time of {_tier_words(tier)} is 0", 0, details
    return f"Wait {duration_words(seconds)}, the bake time of {_tier_words(tier)}", seconds, details


def _times(count: int, what: str) -> str:
    return f"{count} {what}{'s' if count != 1 else ''}"


def _limits(failure: int, inconclusive: int) -> list[str]:
    failed = (
        "any failed measurement fails it"
        if failure == 0
        else f"it fails after {_times(failure + 1, 'failed measurement')}"
    )
    empty = (
        "any measurement without data pauses the deploy"
        if inconclusive == 0
        else f"{_times(inconclusive + 1, 'measurement')} without data pause the deploy"
    )
    return [failed, empty]


def step_views(pipeline: Pipeline, *, tier: int | None, team: str | None, bake: BakeTimes) -> list[StepView]:
    """The steps as a person reads them, for a service of `tier` owned by `team`."""
    views = []
    for index, step in enumerate(pipeline.steps):
        seconds: int | None = None
        details: list[str] = []
        queries: list[QueryView] = []
        if isinstance(step, DeployStep):
            title = _deploy(step.deploy)
        elif isinstance(step, WaitStep):
            title, seconds, details = _wait(step.wait, tier, bake)
        elif isinstance(step, AnalysisStep):
            spec = step.analysis
            seconds = spec.seconds
            title = (
                f"Analyse every {duration_words(parse_duration(spec.interval))}, "
                f"{_times(spec.count, 'time')} ({duration_words(seconds)})"
            )
            queries = [
                QueryView(name=n, query=q.query, condition=q.condition) for n, q in spec.queries.items()
            ]
            details = [f"{q.name} {q.condition}" for q in queries] + _limits(
                spec.failure_limit, spec.inconclusive_limit
            )
        elif isinstance(step, ApprovalStep):
            who = step.approval.who
            if isinstance(who, TeamApprover):
                people = f"someone in team {who.team}"
            else:
                people = (
                    f"{'an owner' if who.team_role == 'owner' else 'a member'} of team {team or '(none)'}"
                )
            title = f"Approval by {people}"
            if step.approval.two_person:
                details = ["a second person: not the one who deploys (asked at /approvals)"]
        elif isinstance(step, NotifyStep):
            title = f"Notify {step.notify.webhook}"
            if step.notify.headers:
                details = [f"with the header sets {', '.join(step.notify.headers)}"]
        else:
            assert isinstance(step, RunStep)
            limit = duration_words(parse_duration(step.run.timeout))
            title = f"Run {' '.join(step.run.command)}"
            details = [f"stopped after {limit}; passes when it exits 0"]
        views.append(
            StepView(
                index=index,
                kind=step.kind,
                name=step.title,
                title=title,
                details=details,
                seconds=seconds,
                queries=queries,
            )
        )
    return views
