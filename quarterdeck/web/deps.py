"""FastAPI dependencies: a database session per request, the settings and the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.runtime import Runtime

T = TypeVar("T")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built over: engines, clients and per-process state."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """A session for the request: a writer's (see db.writer_sessions) unless the method only reads."""
    runtime = runtime_of(request)
    factory = runtime.sessions if request.method in SAFE_METHODS else runtime.writers
    with factory() as session:
        yield session


async def read_in_thread(request: Request, work: Callable[[Session], T]) -> T:
    """`work` with a read session of its own, on a worker thread: the session, the query and the
    close in one hop, where a SessionDep route takes three (open, route, close). For the hottest
    read routes."""
    runtime = runtime_of(request)

    def run() -> T:
        with runtime.sessions() as session:
            return work(session)

    return await run_in_threadpool(run)


def get_settings(request: Request) -> Settings:
    return runtime_of(request).settings


def get_clock(request: Request) -> Clock:
    return runtime_of(request).clock


MAX_ID = 2_147_483_647
"""Row ids fit a 32-bit integer column on every database; larger ones are refused as input."""

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
