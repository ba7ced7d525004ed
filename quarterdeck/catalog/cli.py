"""Catalog commands: import, whois, services."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from quarterdeck.catalog import importer, schemas, service, source_sync
from quarterdeck.catalog.schemas import ServiceFilters
from quarterdeck.console import command_runtime, print_json, print_table, progress_bar, reports_errors, say
from quarterdeck.db import transaction
from quarterdeck.runtime import Runtime

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


def materialize_missing(runtime: Runtime) -> int:
    """After a schema upgrade: materialize the services the read model does not hold yet (all of
    them, the first time); the number materialized."""
    with transaction(runtime.writers) as session:
        if service.read_model_missing(session) == 0:
            return 0
        return service.rebuild_read_model(session)


def register(app: typer.Typer) -> None:
    """Add the catalog's commands to the root `quarterdeck` command."""
    catalog_app = typer.Typer(help="The catalog's read model.", no_args_is_help=True)
    app.add_typer(catalog_app, name="catalog")

    @catalog_app.command("rebuild")
    @reports_errors()
    def rebuild() -> None:
        """Materialize every service's answer again from the catalog tables."""
        with command_runtime() as runtime, transaction(runtime.writers) as session:
            count = service.rebuild_read_model(session)
        typer.echo(f"{count} services materialized")

    @catalog_app.command("check")
    @reports_errors()
    def check() -> None:
        """Compare the stored answers with answers built now from the tables; exit 1 on a difference."""
        with command_runtime() as runtime, runtime.sessions() as session:
            problems = service.check_read_model(session)
        for problem in problems:
            typer.echo(problem)
        if problems:
            typer.echo("run `quarterdeck catalog rebuild` to mend them", err=True)
            raise typer.Exit(1)
        typer.echo("the read model matches the catalog tables")

    @app.command("import")
    @reports_errors()
    def import_(
        target: Annotated[str, typer.Argument(help="A descriptor file, a folder, or a git URL")],
        sync_every: Annotated[
            int | None,
            typer.Option(
                min=source_sync.MIN_INTERVAL_SECONDS,
                max=source_sync.MAX_INTERVAL_SECONDS,
                help="Git: sync it again every this many seconds (default 300, or as before)",
            ),
        ] = None,
        sync: Annotated[
            bool | None, typer.Option("--sync/--no-sync", help="Git: sync it on its own (default on)")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Import descriptors; re-importing the same source is idempotent. Exit 1 if any file had errors.

        A git repository then stays in sync: a worker (`quarterdeck worker`, or the one in
        `quarterdeck serve`) imports it again on its own, reading only the files that changed.
        """
        show_bar = sys.stderr.isatty() and not as_json
        with command_runtime() as runtime, progress_bar("importing", show=show_bar) as bar:
            task = bar.add_task("", total=None)

            def progress(done: int, total: int, file: str) -> None:
                bar.update(task, completed=done, total=total, description=file[-50:])

            report = importer.import_source(
                runtime.writers,
                target,
                settings=runtime.settings,
                clock=runtime.clock,
                progress=progress,
                sync_every=sync_every,
                sync_on=sync,
            )
        if as_json:
            print_json(report.as_json())
        else:
            _print_report(report)
        if report.errors:
            raise typer.Exit(1)

    @app.command()
    @reports_errors()
    def whois(
        name: Annotated[str, typer.Argument(help="Service, team or person")], as_json: JsonFlag = False
    ) -> None:
        """Who to contact about a service, team or person."""
        with command_runtime() as runtime, runtime.sessions() as session:
            answer = service.whois(session, name)
        if as_json:
            print_json(answer.model_dump(mode="json"))
            return
        _print_whois(answer)

    @app.command()
    @reports_errors()
    def services(
        owner: Annotated[str | None, typer.Option(help="Owner team slug")] = None,
        tier: Annotated[int | None, typer.Option(min=1, max=4, help="Tier 1-4")] = None,
        lifecycle: Annotated[str | None, typer.Option()] = None,
        tag: Annotated[str | None, typer.Option()] = None,
        system: Annotated[str | None, typer.Option()] = None,
        q: Annotated[str | None, typer.Option("--text", help="Text in slug, title or description")] = None,
        page: Annotated[int, typer.Option(min=1)] = 1,
        per_page: Annotated[int, typer.Option(min=1, max=500)] = 100,
        as_json: JsonFlag = False,
    ) -> None:
        """List services, filtered."""
        filters = ServiceFilters(owner=owner, tier=tier, lifecycle=lifecycle, tag=tag, system=system, text=q)
        with command_runtime() as runtime, runtime.sessions() as session:
            result = service.list_services(session, filters, page=page, per_page=per_page)
        if as_json:
            print_json(result.model_dump(mode="json"))
            return
        print_table(
            ("slug", "tier", "lifecycle", "owner", "system"),
            (
                (item.slug, str(item.tier or "-"), item.lifecycle, item.owner or "-", item.system or "-")
                for item in result.items
            ),
            title=f"{result.total} services",
        )


def _print_report(report: importer.ImportReport) -> None:
    say(
        f"{report.files} files, {report.entities} entities: {report.created} created, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.removed} removed"
    )
    if report.next_sync_at is not None:
        say(f"next sync at {report.next_sync_at:%Y-%m-%d %H:%M:%S} UTC, then on its own")
    elif report.source.startswith("git:"):
        say("it does not sync on its own (--sync turns that on)")
    for problem in report.errors:
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        say(("error", "red"), f" {where}: {problem.message}")
    for problem in report.notices:
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        say(("note", "yellow"), f"  {where}: {problem.message}")


def _print_whois(answer: schemas.Whois) -> None:
    say((answer.name, "bold"), f" ({answer.type})  {answer.url}")
    say(answer.answer)
    for contact in answer.contacts:
        person = contact.person
        reach = (
            ", ".join(filter(None, [person.email, person.chat_handle])) if person else "not in the catalog"
        )
        say(f"  {contact.role}: {person.name if person else contact.ref} ({reach})")
    for member in answer.team_members[:8]:
        if member.person:
            say(f"  {member.role}: {member.person.name} ({member.person.email or '-'})")
    if answer.channels:
        say(f"  chat: {', '.join(answer.channels)}")
    if answer.emails:
        say(f"  e-mail: {', '.join(answer.emails)}")
