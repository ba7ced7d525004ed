"""What one request may cost the server: how large its body may be, what it may hold, and how many
write requests run at once. Plain ASGI middlewares, applied before routing and authentication.

- Bodies are read as a stream and refused with 413 as soon as they pass their route class's limit
  (a declared Content-Length over it is refused before a byte is read). Chunks are kept in a list
  and joined once: reading never costs more than the body's size.
- A NUL character anywhere in the path, query or body is refused with 422: PostgreSQL cannot store
  or even compare text holding one, and no field has a use for it.
- Write requests (any method but GET, HEAD, OPTIONS) wait for one of `max_writes` slots; one that
  waits longer than `wait_seconds` is answered 503 with Retry-After. Writers then never take every
  worker thread, so reads keep being answered while the database is busy with writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quarterdeck.web.deps import SAFE_METHODS
from quarterdeck.web.errors import error_response

RETRY_AFTER_SECONDS = 1


class BodyTooLarge(Exception):
    pass


def _human(size: int) -> str:
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str, details: object) -> None:
    response = error_response(Request(scope), status, code, message, details)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    await response(scope, _empty, send)


async def _empty() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class RequestBodyMiddleware:
    """Bounds every request body by its route class and refuses NUL characters (see the module)."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, bulk_max_bytes: int, bulk_routes: Sequence[tuple[str, str]]
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.bulk_max_bytes = bulk_max_bytes
        self.bulk_routes = frozenset(bulk_routes)

    def limit_for(self, scope: Scope) -> int:
        bulk = (scope["method"], scope["path"].rstrip("/")) in self.bulk_routes
        return self.bulk_max_bytes if bulk else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await self._nul(scope, send, "the path or query")
            return
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        headers = dict(scope.get("headers", []))
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        try:
            if declared > limit:
                raise BodyTooLarge
            body = await self._read(receive, limit)
        except BodyTooLarge:
            await _refuse(
                scope,
                send,
                413,
                "request.too_large",
                f"the request body is larger than this route takes ({_human(limit)})",
                [{"field": None, "in": "body", "message": f"at most {limit} bytes"}],
            )
            return
        content_type = headers.get(b"content-type", b"")
        nul = b"\x00" in body or b"\\u0000" in body
        if nul or (content_type.startswith(b"application/x-www-form-urlencoded") and b"%00" in body):
            await self._nul(scope, send, "the body")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _nul(scope: Scope, send: Send, where: str) -> None:
        await _refuse(
            scope,
            send,
            422,
            "request.nul_character",
            f"{where} holds a NUL character (\\x00), which no field accepts",
            [{"field": None, "in": where.removeprefix("the "), "message": "NUL character"}],
        )


class WriteAdmissionMiddleware:
    """At most `max_writes` write requests run at once in this process; others wait their turn on the
    event loop (costing no thread) for up to `wait_seconds`, then get 503 with Retry-After."""

    def __init__(self, app: ASGIApp, *, max_writes: int, wait_seconds: float) -> None:
        self.app = app
        self.max_writes = max_writes
        self.wait_seconds = wait_seconds
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_writes)
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.wait_seconds)
        except TimeoutError:
            await _refuse(
                scope,
                send,
                503,
                "server.busy",
                f"the server is busy with other changes; retry in {RETRY_AFTER_SECONDS}s",
                None,
            )
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()
