"""A saturated database or a flood of writes is answered 503 with Retry-After, never a 500 or a hang,
and a body over its route's limit is a 413 read no further than the limit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from starlette.types import Message, Receive, Scope, Send

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.web.limits import RequestBodyMiddleware, WriteAdmissionMiddleware
from tests.helpers import error_of


@pytest.fixture
def tight(settings: Settings, clock: FrozenClock) -> Iterator[FastAPI]:
    """The app with one pooled connection and short waits for it and for locks."""
    narrow = settings.model_copy(
        update={"db_pool_size": 1, "db_pool_timeout_seconds": 0.2, "db_busy_timeout_seconds": 0.3}
    )
    app = create_app(narrow, clock=clock)
    yield app
    app.state.runtime.close()


def _service(client: TestClient) -> None:
    assert client.post("/api/v1/teams", json={"slug": "shop", "name": "Shop"}).status_code == 201
    assert client.post("/api/v1/services", json={"slug": "cart", "owner": "shop"}).status_code == 201


def test_no_free_connection_is_a_503_with_retry_after(tight: FastAPI, admin_token: str) -> None:
    with TestClient(tight, headers={"Authorization": f"Bearer {admin_token}"}) as client:
        held = tight.state.runtime.engine.connect()
        try:
            answer = client.get("/api/v1/services")
        finally:
            held.close()
        error_of(answer, 503, "database.busy")
        assert answer.headers["retry-after"] == "1"
        assert client.get("/api/v1/services").status_code == 200


def test_a_write_lock_held_elsewhere_is_a_503_and_changes_nothing(
    tight: FastAPI, admin_token: str, db_url: str
) -> None:
    with TestClient(tight, headers={"Authorization": f"Bearer {admin_token}"}) as client:
        _service(client)
        if db_url.startswith("sqlite"):
            other = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
        else:
            server = db_url.replace("postgresql+psycopg", "postgresql")
            other = psycopg.connect(server)  # type: ignore[assignment]
            other.execute("SELECT id FROM services WHERE slug = 'cart' FOR UPDATE")
        try:
            answer = client.patch("/api/v1/services/cart", json={"description": "while locked"})
        finally:
            other.rollback()
            other.close()
        error_of(answer, 503, "database.busy")
        assert answer.headers["retry-after"] == "1"
        assert client.get("/api/v1/services/cart").json()["description"] == ""


def test_writes_past_the_admission_queue_are_503_while_reads_pass() -> None:
    release = asyncio.Event()
    entered = 0

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal entered
        entered += 1
        if scope["method"] != "GET":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    admission = WriteAdmissionMiddleware(slow_app, max_writes=2, wait_seconds=0.2)

    async def call(method: str) -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": "/api/v1/x", "headers": [], "query_string": b""}
        await admission(scope, receive, send)
        status: int = sent[0]["status"]
        return status

    async def scenario() -> tuple[list[int], int]:
        writes = [asyncio.create_task(call("PATCH")) for _ in range(3)]
        read = await call("GET")
        await asyncio.sleep(0.4)
        release.set()
        return sorted(await asyncio.gather(*writes)), read

    statuses, read = asyncio.run(scenario())
    assert statuses == [200, 200, 503]
    assert read == 200
    assert entered == 3


# ---------------------------------------------------------------- bodies


def test_an_oversized_body_is_413_before_sign_in(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    big = b"email=" + b"a" * (1024 * 1024 + 1)
    answer = anonymous.post(
        "/login",
        content=big,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    error = error_of(answer, 413, "request.too_large")
    assert error["message"] == "the request body is larger than this route takes (1 MiB)"


def test_a_streamed_body_is_cut_at_the_limit(client: TestClient) -> None:
    produced = 0

    def chunks() -> Iterator[bytes]:
        nonlocal produced
        for _ in range(64):
            produced += 1
            yield b" " * 65536

    answer = client.post("/api/v1/services", content=chunks(), headers={"Content-Type": "application/json"})
    error_of(answer, 413, "request.too_large")


def test_the_bulk_route_takes_more_than_the_ordinary_limit(client: TestClient) -> None:
    reports = [
        {
            "id": f"ci:{n}",
            "service": "nowhere",
            "environment": "production",
            "version": "1.0.0",
            "status": "succeeded",
            "started_at": "2026-11-25T10:00:00Z",
            "notes": "x" * 1500,
        }
        for n in range(1000)
    ]
    answer = client.post("/api/v1/deploys", json=reports)
    assert answer.status_code != 413
    error_of(answer, 404, "deploys.unknown_environment")


def test_limits_are_per_route_class() -> None:
    middleware = RequestBodyMiddleware(
        slow_noop, max_bytes=1024, bulk_max_bytes=4096, bulk_routes=[("POST", "/api/v1/deploys")]
    )
    scope: Scope = {"type": "http", "method": "POST", "path": "/api/v1/deploys/", "headers": []}
    assert middleware.limit_for(scope) == 4096
    assert middleware.limit_for({**scope, "method": "PUT"}) == 1024
    assert middleware.limit_for({**scope, "path": "/api/v1/services"}) == 1024


async def slow_noop(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("never called")
