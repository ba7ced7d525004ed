"""The handler registry: filled by modules' register_jobs(), refused when malformed, frozen once a
worker runs; and the package's public names, pinned."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import quarterdeck.jobs
from quarterdeck.errors import Conflict, Invalid, NotFound
from quarterdeck.jobs.registry import DEFAULT_LEASE_SECONDS, JobContext, JobRegistry, RetryLater, collect
from quarterdeck.jobs.retry import NO_RETRY, Backoff


def nothing(ctx: JobContext) -> None:
    return None


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for plugin modules written by the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("jobs_plugin_")]:
        del sys.modules[name]


def test_collect_loads_each_modules_handlers_in_order(modules: Path) -> None:
    (modules / "jobs_plugin_a.py").write_text(
        "def register_jobs(registry):\n    registry.register('a.first', print, lease_seconds=5)\n"
    )
    (modules / "jobs_plugin_b.py").write_text(
        "def register_jobs(registry):\n    registry.register('b.second', print)\n"
    )

    registry = collect(["jobs_plugin_a", "jobs_plugin_b"])

    assert registry.kinds() == ["a.first", "b.second"]
    assert registry.leases() == {"a.first": 5.0, "b.second": DEFAULT_LEASE_SECONDS}
    assert registry.get("b.second").backoff == Backoff()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "cannot import 'jobs_plugin_missing'"),  # a typo in QD_PLUGINS
        ("X = 1\n", "has no register_jobs(registry) function"),  # a module that is not a plugin
    ],
)
def test_collect_names_a_module_it_cannot_use(modules: Path, source: str | None, message: str) -> None:
    name = "jobs_plugin_missing" if source is None else "jobs_plugin_bad"
    if source is not None:
        (modules / f"{name}.py").write_text(source)

    with pytest.raises(Invalid, match=re.escape(message)) as raised:
        collect([name])

    assert raised.value.code == "jobs.bad_module"


@pytest.mark.parametrize(
    ("kind", "lease", "error", "code"),
    [
        ("dup", 30.0, Conflict, "jobs.duplicate_kind"),  # one handler per kind
        ("", 30.0, Invalid, "jobs.bad_kind"),  # a kind needs a name
        ("x" * 101, 30.0, Invalid, "jobs.bad_kind"),  # longer than the column
        ("fine", 0.0, Invalid, "jobs.bad_lease"),  # a lease of no time is always expired
    ],
)
def test_bad_registrations_are_refused(kind: str, lease: float, error: type[Exception], code: str) -> None:
    registry = JobRegistry()
    registry.register("dup", nothing)

    with pytest.raises(error) as raised:
        registry.register(kind, nothing, lease_seconds=lease)

    assert getattr(raised.value, "code", None) == code


def test_a_frozen_registry_takes_no_more_kinds() -> None:
    registry = JobRegistry()
    registry.register("early", nothing, backoff=NO_RETRY)
    registry.freeze()

    with pytest.raises(Conflict, match="registered after the worker started"):
        registry.register("late", nothing)

    assert registry.frozen
    assert "early" in registry and "late" not in registry
    assert len(registry) == 1


def test_an_unknown_kind_is_not_found() -> None:
    with pytest.raises(NotFound, match="no handler for job kind 'nope'"):
        JobRegistry().get("nope")


def test_retry_later_needs_a_wait_forward_in_time() -> None:
    assert str(RetryLater(5)) == "retry in 5 s"
    with pytest.raises(ValueError, match="expected seconds >= 0"):
        RetryLater(-1)


def test_exported_members() -> None:
    """What other layers may use; a change here is a change of the package's contract."""
    assert quarterdeck.jobs.__all__ == [
        "NO_RETRY",
        "Backoff",
        "Handler",
        "JobContext",
        "JobEventOut",
        "JobOut",
        "JobRegistry",
        "JobState",
        "JobsCollector",
        "KindStats",
        "Outcome",
        "PermanentFailure",
        "QueueStats",
        "RetryLater",
        "Worker",
        "cancel",
        "collect",
        "enqueue",
        "get_job",
        "job_events",
        "list_jobs",
        "operator_moves",
        "queue_stats",
        "retry",
    ]
    assert all(getattr(quarterdeck.jobs, name) is not None for name in quarterdeck.jobs.__all__)
