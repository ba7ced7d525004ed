"""The `quarterdeck` command: serve, import, whois, services, db. Errors print as text or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from quarterdeck.catalog import cli as catalog_cli
from quarterdeck.config import Settings
from quarterdeck.db import make_engine
from quarterdeck.errors import QuarterdeckError

app = typer.Typer(help="Quarterdeck: who owns what, and how to reach them.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

P = ParamSpec("P")
R = TypeVar("R")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        typer.echo(f"error: setting QD_{field.upper()}: {first['msg']}", err=True)
        raise typer.Exit(1) from exc


def reports_errors(as_json_param: str = "as_json") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn a QuarterdeckError into `error: message` (or the JSON error shape) and exit status 1."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except QuarterdeckError as exc:
                if kwargs.get(as_json_param):
                    error = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
                    typer.echo(json.dumps(error), err=True)
                else:
                    typer.echo(f"error: {exc.message}", err=True)
                raise typer.Exit(1) from exc

        return run

    return decorate


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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
        upgrade(make_engine(settings.database_url))
    uvicorn.run(
        "quarterdeck.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info"
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create or upgrade the database schema (safe to run any time)."""
    from quarterdeck.migrations import upgrade

    settings = load_settings()
    upgrade(make_engine(settings.database_url), revision)
    typer.echo(f"database at {revision}: {make_engine(settings.database_url).url.render_as_string()}")


catalog_cli.register(app)
