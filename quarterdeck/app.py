"""The FastAPI application factory: mounts every domain's API and pages, errors, assets, metrics."""

from __future__ import annotations

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
from quarterdeck.access import api as access_api
from quarterdeck.access import views as access_views
from quarterdeck.access.deps import ActorCache
from quarterdeck.catalog import api as catalog_api
from quarterdeck.catalog import service as catalog_service
from quarterdeck.catalog import views as catalog_views
from quarterdeck.clock import Clock, SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import engine_for, make_sessionmaker, writer_sessions
from quarterdeck.deploys import api as deploys_api
from quarterdeck.deploys import views as deploys_views
from quarterdeck.integrations.oci_registry import CachedRegistry, RegistryClient
from quarterdeck.integrations.prometheus import PrometheusClient
from quarterdeck.observability import api as observability_api
from quarterdeck.observability import service as observability_service
from quarterdeck.web import errors
from quarterdeck.web.limits import RequestBodyMiddleware, WriteAdmissionMiddleware
from quarterdeck.web.middleware import MetricsMiddleware, SecurityHeadersMiddleware

STATIC_DIR = Path(__file__).parent / "web" / "static"
BULK_ROUTES = [("POST", "/api/v1/deploys")]
"""Routes whose bodies may reach QD_MAX_BULK_BODY_BYTES (batches of up to 1,000 deploy reports)."""


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One worker thread per pooled connection: a blocking route never waits for a connection
        # that another thread of this process holds.
        to_thread.current_default_thread_limiter().total_tokens = settings.db_pool_size
        yield

    return lifespan


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="Quarterdeck",
        version=__version__,
        description="Internal developer portal: ownership, contacts and dependencies of every service.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(settings),
    )
    engine = engine_for(settings)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.writers = writer_sessions(app.state.sessions)
    app.state.clock = clock or SystemClock()
    app.state.teams_of = catalog_service.teams_of_email
    app.state.actor_cache = ActorCache()
    observability_service.check_templates(settings.link_templates)
    app.state.registry = CachedRegistry(
        RegistryClient(
            username=settings.registry_username,
            password=settings.registry_password,
            plain_http_hosts=frozenset(
                h.strip() for h in settings.registry_plain_http.split(",") if h.strip()
            ),
        ),
        ttl_seconds=settings.registry_cache_seconds,
        clock=app.state.clock,
    )
    app.state.prometheus = (
        PrometheusClient(settings.prometheus_url, timeout=settings.prometheus_timeout_seconds)
        if settings.prometheus_url
        else None
    )
    errors.install(app)
    registry = CollectorRegistry()
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

    app.include_router(access_api.router)
    app.include_router(access_views.router)
    # Deploy and graph routes under /services/{slug}/... come before the catalog's catch-all slug paths.
    app.include_router(deploys_api.router)
    app.include_router(observability_api.router)
    app.include_router(deploys_views.router)
    app.include_router(catalog_api.router)
    app.include_router(catalog_api.public_router)
    app.include_router(catalog_views.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
