"""The `quarterdeck` command: serve, import, whois, services, db. Errors print as text or JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from quarterdeck.console import command_runtime, load_settings
from quarterdeck.db import make_engine
from quarterdeck.domains import DOMAINS, resolve

app = typer.Typer(help="Quarterdeck: who owns what, and how to reach them.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    migrate: Annotated[bool, typer.Option(help="Upgrade the database schema first")] = True,
) -> None:
    """Serve the portal and its API."""
    import uvicorn

    from quarterdeck.migrations import upgrade

    settings = load_settings()
    if migrate:
        engine = make_engine(settings.database_url)
        upgrade(engine)
        engine.dispose()
    # Forwarded headers are believed only from QD_TRUSTED_PROXIES, by the app itself (app.py).
    uvicorn.run(
        "quarterdeck.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create or upgrade the database schema (safe to run any time)."""
    from quarterdeck.migrations import upgrade

    with command_runtime() as runtime:
        upgrade(runtime.engine, revision)
        typer.echo(f"database at {revision}: {runtime.engine.url.render_as_string()}")


for domain in DOMAINS:
    if domain.commands:
        resolve(domain.commands)(app)
