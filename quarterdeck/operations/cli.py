"""Job commands: `quarterdeck worker` runs the domains' handlers; `quarterdeck jobs list|retry|cancel`
looks at and moves jobs as an operator (moves are audited, as the admin page's are)."""

from __future__ import annotations

import json
import signal
from typing import Annotated, Any

import typer

from quarterdeck.access.schemas import Actor
from quarterdeck.console import command_runtime, print_json, print_table, reports_errors
from quarterdeck.db import transaction
from quarterdeck.errors import Invalid
from quarterdeck.jobs.schemas import JobOut
from quarterdeck.jobs.service import MAX_LIST
from quarterdeck.jobs.states import JobState
from quarterdeck.operations import service as operations

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
CLI = Actor.system("cli")
DEFAULT_BATCH = 10
"""Jobs a worker thread claims at once: one claim statement for ten jobs is what takes PostgreSQL past
1,000 jobs/s with four threads (bench/jobs.md); handlers are short, so a batch waits little."""


def _emit(as_json: bool, event: str, text: str, **fields: Any) -> None:
    if as_json:
        typer.echo(json.dumps({"event": event, **fields}, default=str))
    else:
        typer.echo(text, err=True)


def _run_worker(concurrency: int, batch: int, as_json: bool) -> None:
    with command_runtime() as runtime:
        pool = runtime.settings.db_pool_size
        if concurrency + 2 > pool + pool // 2:
            raise Invalid(
                f"--concurrency {concurrency} needs more connections than QD_DB_POOL_SIZE={pool} gives",
                code="jobs.pool_too_small",
            )
        worker = runtime.worker(concurrency=concurrency, batch=batch)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        kinds = worker.registry.kinds()
        _emit(
            as_json,
            "worker.started",
            f"worker {worker.worker_id}: {concurrency} thread(s) for {', '.join(kinds) or 'no job kinds'}",
            worker=worker.worker_id,
            kinds=kinds,
            concurrency=concurrency,
            dialect=worker.dialect,
        )
        stats = worker.run()
    counts = {outcome.value: count for outcome, count in sorted(stats.items())}
    _emit(as_json, "worker.stopped", f"worker stopped: {counts}", worker=worker.worker_id, outcomes=counts)


def _print_jobs(jobs: list[JobOut]) -> None:
    rows = []
    for job in jobs:
        error = (job.last_error or "").strip().splitlines()[-1:] or [""]
        rows.append(
            (
                str(job.id),
                job.kind,
                job.state.value,
                f"{job.due_at:%Y-%m-%d %H:%M:%S}",
                f"{job.attempts}/{job.max_attempts}",
                error[0][:80],
            )
        )
    print_table(("id", "kind", "state", "due", "attempts", "last error"), rows, title=f"{len(jobs)} job(s)")


def _print_job(job: JobOut, as_json: bool) -> None:
    if as_json:
        print_json(job.model_dump(mode="json"))
    else:
        typer.echo(f"job {job.id} ({job.kind}): {job.state.value}")


def register(app: typer.Typer) -> None:
    """Add `worker` and `jobs` to `app`. The worker runs the handlers of every domain's job module
    (domains.py), then those of QD_PLUGINS."""
    jobs_app = typer.Typer(help="Durable jobs: see parked ones, retry or cancel them.", no_args_is_help=True)

    @app.command("worker")
    @reports_errors()
    def worker(
        concurrency: Annotated[int, typer.Option(min=1, max=64, help="Jobs run at once (threads)")] = 1,
        batch: Annotated[
            int,
            typer.Option(min=1, max=100, help="Jobs a thread claims at once (fewer claims, more throughput)"),
        ] = DEFAULT_BATCH,
        as_json: JsonFlag = False,
    ) -> None:
        """Run job handlers until SIGTERM or Ctrl-C.

        Running jobs finish first; jobs claimed but not started are handed back.

        SQLite: run one worker process (threads are fine). PostgreSQL: as many as you like.
        """
        _run_worker(concurrency, batch, as_json)

    @jobs_app.command("list")
    @reports_errors()
    def list_(
        state: Annotated[JobState | None, typer.Option(help="Only jobs in this state")] = None,
        kind: Annotated[str | None, typer.Option(help="Only jobs of this kind")] = None,
        limit: Annotated[int, typer.Option(min=1, max=MAX_LIST)] = 50,
        as_json: JsonFlag = False,
    ) -> None:
        """Jobs, latest due first."""
        with command_runtime() as runtime, runtime.sessions() as session:
            jobs = operations.jobs_overview(
                session, CLI, state=state, kind=kind, now=runtime.clock.now(), limit=limit
            ).items
        if as_json:
            print_json([job.model_dump(mode="json") for job in jobs])
        else:
            _print_jobs(jobs)

    @jobs_app.command("retry")
    @reports_errors()
    def retry(job_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
        """Run a failed (parked) or cancelled job again now, with its attempts afresh."""
        with command_runtime() as runtime, transaction(runtime.writers) as session:
            job = operations.retry_job(session, CLI, job_id, now=runtime.clock.now())
        _print_job(job, as_json)

    @jobs_app.command("cancel")
    @reports_errors()
    def cancel(job_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
        """Stop a job; a running one's handler finishes but nothing it wrote is kept."""
        with command_runtime() as runtime, transaction(runtime.writers) as session:
            job = operations.cancel_job(session, CLI, job_id, now=runtime.clock.now())
        _print_job(job, as_json)

    app.add_typer(jobs_app, name="jobs")
