"""What every command shares: settings with readable errors, JSON output, domain errors as exit 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.errors import QuarterdeckError
from quarterdeck.runtime import Runtime, running

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


@contextmanager
def command_runtime() -> Iterator[Runtime]:
    """The runtime of one command, from the settings (read with readable errors); closed at the end."""
    with running(load_settings()) as runtime:
        yield runtime


@contextmanager
def command_transaction() -> Iterator[Session]:
    """One command, one writer's transaction on its runtime: committed when the command succeeds."""
    with command_runtime() as runtime, transaction(runtime.writers) as session:
        yield session


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
