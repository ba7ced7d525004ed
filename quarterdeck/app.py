"""The FastAPI application factory: every domain's API and pages (from the domain registry), errors,
limits, assets, metrics, over one Runtime."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from quarterdeck import __version__
from quarterdeck.catalog import service as catalog_service
from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.domains import DOMAINS, resolve
from quarterdeck.jobs import JobsCollector
from quarterdeck.observability import service as observability_service
from quarterdeck.runtime import Runtime, build_runtime
from quarterdeck.web import errors
from quarterdeck.web.limits import RequestBodyMiddleware, WriteAdmissionMiddleware
from quarterdeck.web.middleware import MetricsMiddleware, SecurityHeadersMiddleware

STATIC_DIR = Path(__file__).parent / "web" / "static"
BULK_ROUTES = [("POST", "/api/v1/deploys")]
"""Routes whose bodies may reach QD_MAX_BULK_BODY_BYTES (batches of up to 1,000 deploy reports)."""
WORKER_STOP_SECONDS = 15.0
"""How long shutting down waits for the embedded worker's running jobs to finish."""


def _lifespan(runtime: Runtime) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One worker thread per pooled connection: a blocking route never waits for a connection
        # that another thread of this process holds.
        to_thread.current_default_thread_limiter().total_tokens = runtime.settings.db_pool_size
        worker = runtime.worker() if runtime.settings.embedded_worker else None
        thread = threading.Thread(target=worker.run, name="embedded-worker", daemon=True) if worker else None
        if thread:
            thread.start()
        # What startup made (modules, routes, templates, mappers) lives as long as the process: kept
        # out of the collector's full passes, which otherwise walk it all and stall requests.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if worker and thread:
                worker.stop()
                await to_thread.run_sync(thread.join, WORKER_STOP_SECONDS)

    return lifespan


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, runtime: Runtime | None = None
) -> FastAPI:
    """The portal over `runtime` (or one built from `settings`, closed with the app's own close)."""
    runtime = runtime or build_runtime(settings or Settings(), clock=clock)
    settings = runtime.settings
    app = FastAPI(
        title="Quarterdeck",
        version=__version__,
        description="Internal developer portal: ownership, contacts and dependencies of every service.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(runtime),
    )
    app.state.runtime = runtime
    # Access resolves who is asking with the catalog's teams; it sits below the catalog, so is handed them.
    app.state.teams_of = catalog_service.teams_of_email
    observability_service.check_templates(settings.link_templates)
    errors.install(app)
    registry = CollectorRegistry()
    registry.register(JobsCollector(runtime.sessions, clock=runtime.clock))
    app.add_middleware(
        WriteAdmissionMiddleware,
        max_writes=settings.max_concurrent_writes,
        wait_seconds=settings.write_queue_seconds,
    )
    app.add_middleware(
        RequestBodyMiddleware,
        max_bytes=settings.max_body_bytes,
        bulk_max_bytes=settings.max_bulk_body_bytes,
        bulk_routes=BULK_ROUTES,
    )
    app.add_middleware(MetricsMiddleware, registry=registry)
    app.add_middleware(SecurityHeadersMiddleware, https=settings.cookie_secure)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)

    @app.get("/api/v1/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the vendored copy: the docs work on a network with no way out."""
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="Quarterdeck API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    mount_domains(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def mount_domains(app: FastAPI) -> None:
    """Every domain's routers, then every catch-all router: a path like /services/{slug}/deploys is
    matched by its own domain before the catalog's /services/{slug:path} can take it.

    Their routes are added to the app's own list, not included as routers: a router's routes
    already carry its prefix and dependencies, and FastAPI matches an included router by walking
    it again (about half of a cached GET's time went to finding its route among eleven routers)."""
    for domain in DOMAINS:
        for reference in domain.routers:
            app.router.routes.extend(resolve(reference).routes)
    for domain in DOMAINS:
        for reference in domain.catch_all_routers:
            app.router.routes.extend(resolve(reference).routes)
