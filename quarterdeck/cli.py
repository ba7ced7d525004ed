"""The `quarterdeck` command: serve, import, whois, services, db. Errors print as text or JSON."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from quarterdeck.catalog.cli import materialize_missing
from quarterdeck.config import default_database_url
from quarterdeck.console import command_runtime, load_settings, reports_errors, require_tables
from quarterdeck.domains import DOMAINS, resolve

HELP = (
    "Quarterdeck: who owns what, and how to reach them.\n\n"
    "Settings come from QD_* environment variables, or quarterdeck.toml in the current folder. "
    f"The database is QD_DATABASE_URL, by default {default_database_url()}, whichever folder you run "
    "from; `quarterdeck db upgrade` creates it or brings it up to date."
)

app = typer.Typer(help=HELP, no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
@reports_errors()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Worker processes [default: one per CPU core this process may use]"),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Upgrade the database schema first")] = True,
) -> None:
    """Serve the portal and its API: one worker process per core by default, each with its own
    connection pool (QD_DB_POOL_SIZE) and as many request threads."""
    import uvicorn

    from quarterdeck.migrations import upgrade

    if migrate:
        with command_runtime(needs_tables=False) as runtime:
            upgrade(runtime.engine)
            materialize_missing(runtime)
    else:
        require_tables(load_settings())
    # Forwarded headers are believed only from QD_TRUSTED_PROXIES, by the app itself (app.py).
    uvicorn.run(
        "quarterdeck.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or usable_cores(),
        log_level="info",
        proxy_headers=False,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


WORKER_HEALTHCHECK_SECONDS = 30
"""How long the supervisor lets a worker take to answer before it kills and restarts it. Building the
app (importing every domain, opening pools, starting the job worker) took about 8 s on a loaded
2-core machine: uvicorn's default of 5 s killed every worker in a loop."""


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create or upgrade the database schema (safe to run any time)."""
    from quarterdeck.migrations import upgrade

    with command_runtime(needs_tables=False) as runtime:
        upgrade(runtime.engine, revision)
        if revision == "head":
            materialize_missing(runtime)
        typer.echo(f"database at {revision}: {runtime.engine.url.render_as_string()}")


for domain in DOMAINS:
    if domain.commands:
        resolve(domain.commands)(app)
