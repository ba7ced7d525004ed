"""The FastAPI application factory: mounts every domain's API and pages, errors, assets, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from quarterdeck import __version__
from quarterdeck.catalog import api as catalog_api
from quarterdeck.catalog import views as catalog_views
from quarterdeck.clock import Clock, SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker
from quarterdeck.web import errors

STATIC_DIR = Path(__file__).parent / "web" / "static"


def _metrics(app: FastAPI) -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "quarterdeck_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "quarterdeck_http_request_seconds", "HTTP request latency", ["route"], registry=registry
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/v1/docs"):
            return response
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Quarterdeck",
        version=__version__,
        description="Internal developer portal: ownership, contacts and dependencies of every service.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    engine = make_engine(settings.database_url, echo=settings.sql_echo)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.clock = clock or SystemClock()
    errors.install(app)
    _metrics(app)
    _security_headers(app)
    app.include_router(catalog_api.router)
    app.include_router(catalog_views.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
