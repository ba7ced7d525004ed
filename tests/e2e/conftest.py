"""Browser tests: the real app served by uvicorn on a free port, driven by Debian's Chromium.

Run in their own pytest process (see the Makefile): Playwright's sync API and pytest-asyncio-style
event loops do not mix in one process.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from quarterdeck.app import create_app
from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker
from tests.conftest import ROOT
from tests.pg_cluster import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make test-deps`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example organisation served over HTTP, on each database in turn."""
    folder = tmp_path_factory.mktemp("e2e")
    if request.param == "sqlite":
        url = f"sqlite:///{shutil.copy(request.getfixturevalue('sqlite_template'), folder / 'qd.db')}"
    else:
        server: str = request.getfixturevalue("postgres_server")
        template: str = request.getfixturevalue("postgres_template")
        name = "qd_e2e_" + uuid.uuid4().hex[:8]
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url = f"postgresql+psycopg://{server.split('://', 1)[1]}/{name}"
    settings = Settings(database_url=url, git_cache_dir=folder / "git")
    engine = make_engine(url)
    report = import_source(
        make_sessionmaker(engine), str(ROOT / "examples"), settings=settings, clock=SystemClock()
    )
    assert report.errors == []
    engine.dispose()
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server_ = uvicorn.Server(config)
    thread = threading.Thread(target=server_.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base + "/api/v1/openapi.json", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield base
    server_.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    opened = context.new_page()
    yield opened
    context.close()
