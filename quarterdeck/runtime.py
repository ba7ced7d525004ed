"""The composition root: what one process of an install runs on, built once from its Settings: the
engine and sessions, the clock, the clients of outside systems, the job handlers and workers.

The web app, every CLI command and the worker build a Runtime and pass it down; nothing else opens
engines or clients, and no module keeps state of its own. Domains keep their per-process state
(caches) here too, through `state()`, so two runtimes in one process (tests) never share it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import Clock, SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import RUNTIME_KEY, engine_for, make_sessionmaker, writer_sessions
from quarterdeck.domains import job_modules
from quarterdeck.integrations.oci_registry import CachedRegistry, RegistryClient
from quarterdeck.integrations.prometheus import PrometheusClient
from quarterdeck.jobs.registry import JobRegistry, collect
from quarterdeck.jobs.runner import Worker

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    """Sessions for reading (and for writes that need no lock taken up front)."""
    writers: sessionmaker[Session]
    """Sessions whose transactions write: on SQLite they hold the write lock from their first statement."""
    registry: CachedRegistry
    prometheus: PrometheusClient | None
    _state: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, name: str, make: Callable[[], T]) -> T:
        """The process-wide object `name` of this runtime (a domain's cache), made once on first use."""
        with self._lock:
            if name not in self._state:
                self._state[name] = make()
            found: T = self._state[name]
            return found

    def job_registry(self) -> JobRegistry:
        """The handlers of every domain's job module (domains.py), then those of QD_PLUGINS."""
        plugins = [name.strip() for name in self.settings.plugins.split(",") if name.strip()]
        return self.state("jobs.registry", lambda: collect([*job_modules(), *plugins]))

    def worker(self, *, concurrency: int = 1, batch: int = 1) -> Worker:
        """A job worker over this runtime's sessions and handlers; `run()` it on a thread of its own."""
        return Worker(
            self.sessions,
            self.writers,
            self.job_registry(),
            clock=self.clock,
            concurrency=concurrency,
            batch=batch,
        )

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    runtime = Runtime(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        writers=writer_sessions(sessions),
        registry=CachedRegistry(
            RegistryClient(
                username=settings.registry_username,
                password=settings.registry_password,
                plain_http_hosts=frozenset(
                    h.strip() for h in settings.registry_plain_http.split(",") if h.strip()
                ),
            ),
            ttl_seconds=settings.registry_cache_seconds,
            clock=clock,
        ),
        prometheus=(
            PrometheusClient(settings.prometheus_url, timeout=settings.prometheus_timeout_seconds)
            if settings.prometheus_url
            else None
        ),
    )
    # Every session reaches its runtime (and so the domains' per-process state) through session.info.
    for factory in (runtime.sessions, runtime.writers):
        factory.configure(info={RUNTIME_KEY: runtime})
    return runtime


@contextmanager
def running(settings: Settings, *, clock: Clock | None = None) -> Iterator[Runtime]:
    """A runtime for the length of one command: its connections are closed at the end."""
    runtime = build_runtime(settings, clock=clock)
    try:
        yield runtime
    finally:
        runtime.close()
