"""The only mapping of domain errors to HTTP: JSON for the API, an error page or fragment for pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from quarterdeck.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionFailed,
    QuarterdeckError,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from quarterdeck.web.templating import is_htmx, templates

STATUS = [
    (PreconditionFailed, 412),
    (NotFound, 404),
    (Invalid, 422),
    (Conflict, 409),
    (Forbidden, 403),
    (Unauthenticated, 401),
    (RateLimited, 429),
    (Unavailable, 503),
]


def status_of(exc: QuarterdeckError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def error_response(request: Request, status: int, code: str, message: str, details: Any = None) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"error": {"code": code, "message": message, "details": details}}, status_code=status
        )
    template = "_partials/error.html" if is_htmx(request) else "error.html"
    context = {"status": status, "code": code, "message": message, "details": details}
    return templates.TemplateResponse(request, template, context, status_code=status)


async def _domain_error(request: Request, exc: Exception) -> Response:
    """A page that needs a signed-in user sends a browser to the sign-in page, then back."""
    assert isinstance(exc, QuarterdeckError)
    if isinstance(exc, Unauthenticated) and not _wants_json(request) and request.method == "GET":
        target = "/login?" + urlencode(
            {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
        )
        if is_htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    response = error_response(request, status_of(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, Unauthenticated) and _wants_json(request):
        response.headers["WWW-Authenticate"] = 'Bearer realm="quarterdeck"'
    return response


def _union_tag(location: tuple[Any, ...]) -> str | None:
    """The union member Pydantic names in a body error's location (`DeployReport`, `list[...]`)."""
    if len(location) >= 2 and location[0] == "body" and isinstance(location[1], str):
        tag = location[1]
        if tag.startswith("list[") or tag[:1].isupper():
            return tag
    return None


def _branch_taken(errors: Sequence[Any], body: Any) -> list[Any]:
    """For a body that may be one object or a list of them, only the errors of the shape the client
    sent, located without the union member's name (`1.version`, not `list[DeployReport].1.version`)."""
    if not any(_union_tag(tuple(e.get("loc", ()))) for e in errors):
        return list(errors)
    kept = []
    for error in errors:
        location = tuple(error.get("loc", ()))
        tag = _union_tag(location)
        if tag is None:
            kept.append(error)
        elif tag.startswith("list[") == isinstance(body, list):
            kept.append({**error, "loc": (location[0], *location[2:])})
    return kept or list(errors)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = []
    for error in _branch_taken(exc.errors(), exc.body):
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            ctx = error.get("ctx", {})
            return error_response(
                request,
                400,
                "request.malformed_json",
                f"the body is not valid JSON: {ctx.get('error', 'parse error')}",
            )
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = f"unknown field {location[-1]!r}"
        details.append(
            {
                "field": ".".join(location[1:]) or location[0] if location else None,
                "in": location[0] if location else None,
                "message": message,
            }
        )
    first = details[0] if details else {"field": None, "message": "invalid request"}
    summary = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
    return error_response(request, 422, "request.invalid", summary, details)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = "no such page" if exc.status_code == 404 else str(exc.detail)
    response = error_response(request, exc.status_code, code, message)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _database_busy(request: Request, exc: Exception) -> Response:
    """No free connection in time, or SQLite's write lock not had in time, or the database away:
    the request changed nothing, so the client may simply retry."""
    response = error_response(
        request,
        503,
        "database.busy",
        "the database is busy or unreachable; nothing was changed, retry in a moment",
    )
    response.headers["Retry-After"] = "1"
    return response


async def _constraint_race(request: Request, exc: Exception) -> Response:
    """A unique constraint broken by a change that raced this one past every check: nothing was
    written, and reading again shows what won."""
    return error_response(
        request,
        409,
        "conflict.concurrent_change",
        "another change to the same thing was saved at the same moment; nothing was changed, read it "
        "again and retry",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(QuarterdeckError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _database_busy)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _database_busy)
    app.add_exception_handler(sqlalchemy.exc.IntegrityError, _constraint_race)
