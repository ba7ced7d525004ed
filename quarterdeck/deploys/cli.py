"""Deploy commands: `deploys report` (one deploy, or a file of them; to the database or to a portal's
API with a token), `deploys list`, `deploys live`, and `environments list` / `environments apply`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from quarterdeck.access.schemas import Actor
from quarterdeck.clock import SystemClock
from quarterdeck.console import command_transaction, print_json, print_table, reports_errors
from quarterdeck.deploys import service
from quarterdeck.deploys.models import DeploySource
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from quarterdeck.deploys.service import DeployFilters
from quarterdeck.deploys.states import DeployStatus
from quarterdeck.errors import Invalid, QuarterdeckError
from quarterdeck.integrations.http import check_status, make_client, mapped_errors

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
SYSTEM = Actor.system("cli")

deploys_app = typer.Typer(help="Deploy history and what runs where.", no_args_is_help=True)
environments_app = typer.Typer(help="The organisation's environments, in order.", no_args_is_help=True)


def _reports_from(data: Any, source: str) -> list[DeployReport]:
    items = data if isinstance(data, list) else (data or {}).get("deploys", data)
    if not isinstance(items, list):
        raise Invalid(
            f"{source}: expected a list of deploy reports (or `deploys:` holding one)",
            code="deploys.bad_file",
        )
    reports = []
    for index, item in enumerate(items):
        try:
            reports.append(DeployReport.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise Invalid(
                f"{source}: report {index}: {field}: {first['msg']}", code="deploys.bad_file"
            ) from exc
    return reports


def portal_base(api: str) -> str:
    """The portal's base URL from what --api was given: the portal (`https://portal`) or its API
    (`https://portal/api/v1`), with or without a trailing slash."""
    return api.strip().rstrip("/").removesuffix("/api/v1").rstrip("/")


def _post(api: str, token: str, reports: list[DeployReport]) -> list[dict[str, Any]]:
    """Send the reports to a portal's API (how CI reports without database access)."""
    body = [r.model_dump(mode="json") for r in reports]
    with (
        make_client(portal_base(api), headers={"Authorization": f"Bearer {token}"}) as client,
        mapped_errors("portal"),
    ):
        response = client.post("/api/v1/deploys", json=body)
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            check_status("portal", response, "the deploy report")
            raise
        raise QuarterdeckError(error["message"], code=error["code"], details=error.get("details"))
    answer: list[dict[str, Any]] = response.json()
    return answer


@deploys_app.command("report")
@reports_errors()
def report(
    service_: Annotated[str | None, typer.Option("--service", help="Service slug")] = None,
    environment: Annotated[str | None, typer.Option(help="Environment slug")] = None,
    version: Annotated[str | None, typer.Option(help="Version deployed")] = None,
    status: Annotated[
        DeployStatus, typer.Option(help="running, succeeded, failed or rolled_back")
    ] = DeployStatus.SUCCEEDED,
    image: Annotated[str | None, typer.Option(help="Image reference")] = None,
    commit: Annotated[str | None, typer.Option(help="Commit SHA")] = None,
    deploy_id: Annotated[
        str | None, typer.Option("--id", help="Your id for this deploy (retries reuse it)")
    ] = None,
    notes: Annotated[str, typer.Option(help="Changelog or notes")] = "",
    approval: Annotated[
        int | None,
        typer.Option(min=1, help="Id of the approved request this deploy ships under (tier-1 production)"),
    ] = None,
    started_at: Annotated[datetime | None, typer.Option(help="When it started (default: now)")] = None,
    finished_at: Annotated[
        datetime | None, typer.Option(help="When it finished (default: now, unless running)")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="A YAML or JSON file with a list of reports instead")
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(envvar="QD_API_URL", help="Report to this portal (its URL, with or without /api/v1)"),
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="QD_API_TOKEN", help="API token (scope deploy)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a deploy done elsewhere. Re-running with the same --id is safe: never a duplicate."""
    if file is not None:
        reports = _reports_from(yaml.safe_load(file.read_text(encoding="utf-8")), str(file))
    else:
        if not (service_ and environment and version):
            raise Invalid(
                "--service, --environment and --version are required (or --file)", code="deploys.missing"
            )
        now = datetime.now(UTC)
        started = (started_at or now).replace(tzinfo=(started_at or now).tzinfo or UTC)
        finished = (
            None
            if status is DeployStatus.RUNNING
            else (finished_at or now).replace(tzinfo=(finished_at or now).tzinfo or UTC)
        )
        reports = [
            DeployReport(
                id=deploy_id or f"cli:{service_}:{environment}:{version}:{int(started.timestamp())}",
                service=service_,
                environment=environment,
                version=version,
                image=image,
                commit=commit,
                status=status,
                started_at=started,
                finished_at=finished,
                notes=notes,
                source=DeploySource.CLI,
                approval=approval,
            )
        ]
    if api:
        if not token:
            raise Invalid("reporting to --api needs --token (or QD_API_TOKEN)", code="deploys.missing_token")
        results = _post(api, token, reports)
    else:
        with command_transaction() as session:
            results = [
                r.model_dump(mode="json")
                for r in service.report(session, SYSTEM, reports, at=SystemClock().now())
            ]
    if as_json:
        print_json(results)
        return
    for result in results:
        d = result["deploy"]
        what = f"{d['service']} {d['release']['version']} -> {d['environment']}"
        typer.echo(f"{result['outcome']}: {what} ({d['status']}) #{d['id']}")
        for flag in d.get("flags", []):
            typer.echo(f"  flagged: {flag['message']}")


@deploys_app.command("list")
@reports_errors()
def list_(
    service_: Annotated[
        str | None, typer.Argument(metavar="SERVICE", help="Service slug (all when omitted)")
    ] = None,
    environment: Annotated[str | None, typer.Option(help="Only this environment")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Deploys, newest first."""
    with command_transaction() as session:
        found = service.list_deploys(
            session, DeployFilters(service=service_, environment=environment), per_page=limit
        )
    if as_json:
        print_json(found.model_dump(mode="json"))
        return
    print_table(
        ("id", "service", "version", "environment", "status", "by", "started"),
        (
            (
                str(d.id),
                d.service,
                d.release.version,
                d.environment,
                d.status.value,
                d.deployed_by,
                f"{d.started_at:%Y-%m-%d %H:%M}",
            )
            for d in found.items
        ),
        title=f"{found.total} deploy{'' if found.total == 1 else 's'}",
    )


@deploys_app.command("live")
@reports_errors()
def live(service_: Annotated[str, typer.Argument(metavar="SERVICE")], as_json: JsonFlag = False) -> None:
    """What runs in each environment (without the registry: that is the portal's job)."""
    with command_transaction() as session:
        answer = service.live_of(session, service_, registry=None)
    if as_json:
        print_json(answer.model_dump(mode="json"))
        return
    for e in answer.environments:
        d = e.deploy
        where = f"{e.environment.name:<16}"
        if d is None:
            typer.echo(f"{where} -")
            continue
        at = d.finished_at or d.started_at
        typer.echo(f"{where} {d.release.version} by {d.deployed_by} at {at:%Y-%m-%d %H:%M}")


@environments_app.command("list")
@reports_errors()
def environments_list(as_json: JsonFlag = False) -> None:
    with command_transaction() as session:
        envs = service.environments(session)
    if as_json:
        print_json([e.model_dump() for e in envs])
        return
    for e in envs:
        typer.echo(f"{e.position:>3} {e.slug:<20} {e.name}{' (production)' if e.production else ''}")


@environments_app.command("apply")
@reports_errors()
def environments_apply(
    file: Annotated[Path, typer.Argument(help="YAML: environments: [{slug, name, production}] in order")],
    as_json: JsonFlag = False,
) -> None:
    """Create or update environments from a file; their order there is their order in the portal."""
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    items = data.get("environments") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise Invalid(f"{file}: expected `environments:` with a list", code="deploys.bad_file")
    declared = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "slug" not in item:
            raise Invalid(f"{file}: environment {index} needs a slug", code="deploys.bad_file")
        try:
            body = EnvironmentIn(
                name=item.get("name", item["slug"]), position=index, production=item.get("production", False)
            )
        except ValidationError as exc:
            raise Invalid(
                f"{file}: environment {index}: {exc.errors()[0]['msg']}", code="deploys.bad_file"
            ) from exc
        declared.append((str(item["slug"]), body))
    with command_transaction() as session:
        envs = service.apply_environments(session, SYSTEM, declared, at=SystemClock().now())
    if as_json:
        print_json([e.model_dump() for e in envs])
    else:
        typer.echo(f"{len(envs)} environments: {', '.join(e.slug for e in envs)}")


def register(app: typer.Typer) -> None:
    app.add_typer(deploys_app, name="deploys")
    app.add_typer(environments_app, name="environments")
