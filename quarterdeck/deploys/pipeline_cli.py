"""Pipeline commands: `pipelines apply FILE` (an override of a team or service, or an organisation default),
`pipelines show SERVICE --env ENV` (which pipeline and why), `pipelines list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quarterdeck.access.schemas import Actor
from quarterdeck.clock import SystemClock
from quarterdeck.console import command_runtime, command_transaction, print_json, print_table, reports_errors
from quarterdeck.db import transaction
from quarterdeck.deploys.pipelines import service
from quarterdeck.deploys.pipelines.loading import read_pipeline_file
from quarterdeck.deploys.pipelines.schemas import ChosenPipeline
from quarterdeck.errors import Invalid

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
SYSTEM = Actor.system("cli")

pipelines_app = typer.Typer(
    help="Deploy pipelines: the defaults, team and service overrides, and which one a deploy gets.",
    no_args_is_help=True,
)


@pipelines_app.command("apply")
@reports_errors()
def apply(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file (docs/pipelines.md)")],
    team: Annotated[str | None, typer.Option(help="Override for every service of this team")] = None,
    service_: Annotated[str | None, typer.Option("--service", help="Override for this service")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only in this environment")] = None,
    base_version: Annotated[
        int | None, typer.Option(min=0, help="Refuse unless the pipeline is still at this version (0: new)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Keep a pipeline: a team's or a service's override, or (with neither) an organisation default named
    by the file's `name`. A new version only when the file changed."""
    if team and service_:
        raise Invalid("give --team or --service, not both", code="pipelines.bad_scope")
    with command_runtime() as runtime:
        pipeline = read_pipeline_file(file)
        scope, ref = (
            ("team", team) if team else ("service", service_) if service_ else ("default", pipeline.name)
        )
        with transaction(runtime.writers) as session:
            result = service.apply_pipeline(
                session,
                SYSTEM,
                scope,
                ref,
                pipeline,
                environment=env,
                base_version=base_version,
                source=str(file),
                header_sets=runtime.settings.webhook_headers.keys(),
                at=SystemClock().now(),
            )
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    p = result.pipeline
    typer.echo(f"{result.outcome}: {p.key} ({p.name}) version {p.version}, sha256:{p.digest[:12]}")
    for lost in result.weakened:
        typer.echo(f"  approval removed or loosened: {lost}")


def _print_choice(chosen: ChosenPipeline) -> None:
    source = chosen.source
    version = f"version {source.version}" if source.version else "as shipped"
    typer.echo(f"{chosen.service} in {chosen.environment}: {chosen.pipeline.name} ({source.key}, {version})")
    typer.echo(f"digest: sha256:{source.digest}")
    typer.echo("why:")
    for reason in chosen.reasons:
        typer.echo(f"  - {reason}")
    for warning in chosen.warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"steps (on failure: {chosen.pipeline.on_failure}):")
    for step in chosen.steps:
        typer.echo(f"  {step.index + 1}. {step.title}")
        for detail in step.details:
            typer.echo(f"       {detail}")


@pipelines_app.command("show")
@reports_errors()
def show(
    service_: Annotated[str, typer.Argument(metavar="SERVICE", help="Service slug")],
    env: Annotated[str, typer.Option("--env", help="Environment slug")],
    as_json: JsonFlag = False,
) -> None:
    """Which pipeline a deploy of SERVICE to ENV gets, why, and its steps."""
    with command_transaction() as session:
        chosen = service.pipeline_for(session, service_, env)
    if as_json:
        print_json(chosen.model_dump(mode="json"))
    else:
        _print_choice(chosen)


@pipelines_app.command("list")
@reports_errors()
def list_(as_json: JsonFlag = False) -> None:
    """Every pipeline: overrides, organisation defaults and product defaults."""
    with command_transaction() as session:
        found = service.list_pipelines(session)
    if as_json:
        print_json([p.model_dump(mode="json") for p in found])
        return
    print_table(
        ("id", "key", "name", "version", "digest", "updated"),
        (
            (
                str(p.id or "-"),
                p.key,
                p.name,
                str(p.version or "shipped"),
                p.digest[:12],
                f"{p.updated_at:%Y-%m-%d %H:%M} by {p.updated_by}" if p.updated_at else "-",
            )
            for p in found
        ),
        title=f"{len(found)} pipeline{'s' if len(found) != 1 else ''}",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(pipelines_app, name="pipelines")
