"""What every command shares: settings with readable errors, a database that is there, JSON output,
domain errors as exit 1, and the one way to print text, tables and progress (never as Rich markup)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from quarterdeck.config import Settings
from quarterdeck.db import database_location, transaction, unmigrated_database
from quarterdeck.errors import QuarterdeckError, Unavailable
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


def require_tables(settings: Settings) -> None:
    """Refuse, in one line that says what to run, a database that is missing or was never migrated
    (instead of creating an empty SQLite file and failing on its first query), or cannot be reached."""
    try:
        problem = unmigrated_database(settings.database_url)
    except DatabaseError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise Unavailable(
            f"cannot open the database at {database_location(settings.database_url)}: {reason}",
            code="database.unreachable",
        ) from None
    if problem:
        raise Unavailable(
            f"{problem}: run `quarterdeck db upgrade`, or point QD_DATABASE_URL at your database",
            code="database.not_migrated",
        )


@contextmanager
def command_runtime(*, needs_tables: bool = True) -> Iterator[Runtime]:
    """The runtime of one command, from the settings (read with readable errors); closed at the end.
    Its database must have been migrated unless `needs_tables` is False (`db upgrade` makes them)."""
    settings = load_settings()
    if needs_tables:
        require_tables(settings)
    with running(settings) as runtime:
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


# ---------------------------------------------------------------- text, tables and progress
# Commands print through these, never through a Rich console of their own: Rich reads `[...]` in a
# string as markup and drops it, so a message quoting `[a-z0-9]` or a name in brackets lost it.


def _console(*, err: bool = False) -> Console:
    return Console(stderr=err, markup=False, emoji=False, highlight=False)


Part = str | tuple[str, str]
"""Text, or (text, Rich style) such as ("error", "red"): coloured on a terminal, plain elsewhere."""


def say(*parts: Part, err: bool = False) -> None:
    """Print one line made of `parts`, as text: whatever they hold is printed as it is."""
    _console(err=err).print(Text.assemble(*parts), soft_wrap=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None) -> None:
    """A table of text cells (never markup) on stdout."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    _console().print(table)


def progress_bar(label: str, *, show: bool) -> Progress:
    """A progress bar on stderr (`show=False`: none); each task's description is printed as text."""
    return Progress(
        TextColumn(label, style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=_console(err=True),
        disable=not show,
    )


class LiveTable:
    """A heading, a table of text cells and a footer, drawn again in place at each `update` (a rollout
    followed live); every part is printed as text, never markup."""

    def __init__(self, live: Live, columns: Sequence[str]) -> None:
        self._live = live
        self._columns = columns

    def update(self, heading: Sequence[Part], rows: Iterable[Sequence[Part]], footer: str = "") -> None:
        table = Table(*self._columns)
        for row in rows:
            table.add_row(*(Text.assemble(cell) for cell in row))
        parts: list[Text | Table] = [Text.assemble(*heading), table]
        if footer:
            parts.append(Text(footer))
        self._live.update(Group(*parts), refresh=True)


@contextmanager
def live_table(columns: Sequence[str]) -> Iterator[LiveTable]:
    """A LiveTable on stdout; what it shows last stays on the screen."""
    with Live(console=_console(), refresh_per_second=4, transient=False) as live:
        yield LiveTable(live, columns)
