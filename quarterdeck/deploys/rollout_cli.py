"""Rollout commands: `deploy SERVICE VERSION --env ENV [--queue] [--follow]` starts a rollout (and follows
it live: steps, weight, countdowns, analysis figures), and `environments freeze ENV --from --until`."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from quarterdeck.access.schemas import Actor
from quarterdeck.console import LiveTable, Part, command_runtime, live_table, print_json, reports_errors
from quarterdeck.db import retrying_on_race, transaction
from quarterdeck.deploys import rollouts
from quarterdeck.deploys.cli import environments_app
from quarterdeck.deploys.rollouts.schemas import FreezeIn, RolloutOut, StepOut
from quarterdeck.errors import Invalid
from quarterdeck.runtime import Runtime

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
SYSTEM = Actor.system("cli")
POLL_SECONDS = 0.5
STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "rolled_back": "red",
    "waiting": "yellow",
    "running": "blue",
}


def _step_detail(step: StepOut) -> str:
    if step.analysis is not None and step.analysis.intervals:
        last = step.analysis.intervals[-1]
        figures = ", ".join(
            f"{r.query} {'no data' if r.value is None else f'{r.value:.4g}'} {r.condition} ({r.verdict})"
            for r in last.results
        )
        return f"{step.analysis.measured}/{step.analysis.count}: {figures}"
    if step.approval is not None and step.approval.request_id is not None:
        waited = f", {step.approval.waiting_seconds:.0f} s" if step.approval.waiting_seconds else ""
        return f"{step.approval.status}: {step.approval.who} (request {step.approval.request_id}{waited})"
    if step.seconds_left is not None and step.state == "waiting":
        return f"{step.seconds_left:.0f} s left"
    return step.error or ""


COLUMNS = ("#", "step", "state", "active", "waiting", "detail")


def show(table: LiveTable, view: RolloutOut) -> None:
    """The rollout as the live display shows it: a heading, then one row per step."""
    heading: list[Part] = [
        (f"{view.service} {view.version} -> {view.environment}: ", "bold"),
        (view.state.value.replace("_", " "), STATE_STYLE.get(view.state.value, "")),
        f" · {view.weight}% of traffic · pipeline {view.pipeline.name} v{view.pipeline.version}",
    ]
    rows: list[list[Part]] = [
        [
            ">" if step.position == view.current_step and not view.final else str(step.position + 1),
            step.title,
            (step.state.value, STATE_STYLE.get(step.state.value, "")),
            f"{step.active_seconds:.1f} s",
            f"{step.waiting_seconds:.1f} s",
            _step_detail(step),
        ]
        for step in view.steps
    ]
    table.update(heading, rows, view.reason)


def follow(runtime: Runtime, rollout_id: int, *, as_json: bool) -> RolloutOut:
    """Poll the rollout's events until it is final; show it live (or print each event as a JSON line)."""
    after = 0
    with contextlib.ExitStack() as stack:
        table = None if as_json else stack.enter_context(live_table(COLUMNS))
        while True:
            with runtime.sessions() as session:
                page = rollouts.rollout_events(session, rollout_id, after=after)
                view = rollouts.rollout_view(session, rollout_id, at=runtime.clock.now())
            if as_json:
                for event in page.events:
                    print_json({"event": event.model_dump(mode="json")})
            elif table is not None:
                show(table, view)
            after = page.last_id
            if view.final and not page.events:
                return view
            time.sleep(POLL_SECONDS)


@reports_errors()
def deploy(
    service_: Annotated[str, typer.Argument(metavar="SERVICE")],
    version: Annotated[str, typer.Argument(metavar="VERSION")],
    env: Annotated[str, typer.Option("--env", help="The environment to deploy to")],
    queue: Annotated[bool, typer.Option("--queue", help="Queue behind a rollout running there")] = False,
    emergency: Annotated[
        bool,
        typer.Option("--emergency", help="Into a frozen environment, with an approved emergency request"),
    ] = False,
    follow_: Annotated[bool, typer.Option("--follow", help="Show the steps live until it ends")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a version through the pipeline the service gets (`pipelines show`); steps run on the
    workers (`serve` or `worker`). With --follow, exits 0 when it succeeded and 1 otherwise."""
    with command_runtime() as runtime:
        now = runtime.clock.now()
        with runtime.writers() as session:

            def start() -> RolloutOut:
                started = rollouts.start_rollout(
                    session, SYSTEM, service_, version, env, queue=queue, emergency=emergency, at=now
                )
                return rollouts.rollout_out(session, started, at=now)

            view = retrying_on_race(session, start)
        if as_json and not follow_:
            print_json(view.model_dump(mode="json"))
        elif not follow_:
            typer.echo(
                f"rollout {view.id}: {view.service} {view.version} to {view.environment} "
                f"is {view.state.value}"
            )
        if not follow_:
            return
        final = follow(runtime, view.id, as_json=as_json)
    if as_json:
        print_json(final.model_dump(mode="json"))
    raise typer.Exit(0 if final.state.value == "succeeded" else 1)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(
            f"{option} {text!r} is not a time such as 2026-12-24T18:00Z", code="freezes.bad_times"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@reports_errors()
def freeze(
    environment: Annotated[str, typer.Argument(metavar="ENV")],
    from_: Annotated[str, typer.Option("--from", help="Start (ISO 8601; UTC unless it says)")],
    until: Annotated[str, typer.Option("--until", help="End (ISO 8601; UTC unless it says)")],
    reason: Annotated[str, typer.Option("--reason", help="Why: shown to whoever is refused")],
    weekly: Annotated[bool, typer.Option("--weekly", help="Repeat every week")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Refuse deploys into ENV between two times (a release weekend), once or every week."""
    body = FreezeIn(
        starts_at=_moment(from_, "--from"), ends_at=_moment(until, "--until"), reason=reason, weekly=weekly
    )
    with command_runtime() as runtime, transaction(runtime.writers) as session:
        out = rollouts.add_freeze(session, SYSTEM, environment, body, at=runtime.clock.now())
    if as_json:
        print_json(out.model_dump(mode="json"))
    else:
        typer.echo(
            f"freeze window {out.id}: {environment} frozen {out.starts_at:%Y-%m-%d %H:%M} "
            f"to {out.ends_at:%Y-%m-%d %H:%M} UTC"
        )


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    environments_app.command("freeze")(freeze)
