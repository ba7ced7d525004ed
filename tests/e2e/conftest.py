"""Browser tests: the real app served by uvicorn on a free port, driven by Debian's Chromium.

Run in their own pytest process (see the Makefile): Playwright's sync API and pytest-asyncio-style
event loops do not mix in one process.

The portal requires signing in, so the app of each module comes with a member who has a password,
and the `page` and `phone` fixtures are signed in as that member through the real sign-in form
(once per module: later contexts start from the saved cookies). `anon_page` is a fresh browser
nobody has signed in with. A module that needs the app configured differently (single sign-on, say)
overrides the `app_settings` fixture.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, StorageState, ViewportSize, expect, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.app import create_app
from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import FrozenClock, SystemClock
from quarterdeck.config import Settings
from quarterdeck.db import make_engine, make_sessionmaker
from tests.conftest import ROOT, fresh_database, make_user
from tests.helpers import wait_until_serving
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
MEMBER_EMAIL = "member@e2e.example"
PASSWORD = "correct horse battery staple"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

AppSettings = Callable[[str], dict[str, Any]]
"""The app's base URL -> extra `Settings` fields for the app of a module."""


class WallClock(FrozenClock):
    """The system clock in the type `make_user` asks for (it only ever calls `now()`)."""

    def __init__(self) -> None:
        super().__init__(SystemClock().now())

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class LiveApp:
    """The example organisation served over HTTP, with a member who may sign in with a password."""

    url: str
    sessions: sessionmaker[Session]
    member_email: str = MEMBER_EMAIL
    password: str = PASSWORD

    def add_user(
        self, email: str, *, role: GlobalRole = GlobalRole.MEMBER, teams: dict[str, str] | None = None
    ) -> str:
        """A user with the shared test password (and team roles, "owner" or "member"); its e-mail."""
        make_user(self.sessions, WallClock(), email, role=role, password=self.password, teams=teams)
        return email


def sign_in(page: Page, base: str, email: str, password: str = PASSWORD, *, next_: str = "/") -> None:
    """Sign in through the sign-in form, as a person would, and wait until it lands on `next_`."""
    page.goto(f"{base}/login?next={next_}")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("#password-sign-in").click()
    expect(page).to_have_url(re.compile(re.escape(base + next_) + r"$"))
    expect(page.locator("#account-link")).to_have_text(email)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make test-deps`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def app_settings() -> AppSettings:
    """No extra settings: override in a module to configure its app."""
    return lambda base_url: {}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, app_settings: AppSettings
) -> Iterator[LiveApp]:
    """The example organisation served over HTTP, on each database in turn."""
    folder = tmp_path_factory.mktemp("e2e")
    with fresh_database(request, request.param, folder) as url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            database_url=url, git_cache_dir=folder / "git", base_url=base, **app_settings(base)
        )
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        report = import_source(sessions, str(ROOT / "examples"), settings=settings, clock=SystemClock())
        assert report.errors == []
        make_user(sessions, WallClock(), MEMBER_EMAIL, role=GlobalRole.MEMBER, password=PASSWORD)
        app = create_app(settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server_ = uvicorn.Server(config)
        thread = threading.Thread(target=server_.run, daemon=True)
        thread.start()
        wait_until_serving(base, timeout=20)
        yield LiveApp(url=base, sessions=sessions)
        server_.should_exit = True
        thread.join(timeout=10)
        app.state.runtime.close()
        engine.dispose()


@pytest.fixture(scope="module")
def live_url(live_app: LiveApp) -> str:
    return live_app.url


@pytest.fixture(scope="module")
def member_state(browser: Browser, live_app: LiveApp) -> StorageState:
    """The cookies of a browser that signed in as the member through the sign-in form."""
    context = browser.new_context(viewport=DESKTOP)
    try:
        sign_in(context.new_page(), live_app.url, live_app.member_email, live_app.password)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, member_state: StorageState) -> Iterator[Page]:
    """A desktop browser signed in as the member."""
    context = browser.new_context(viewport=DESKTOP, storage_state=member_state)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def phone(browser: Browser, member_state: StorageState) -> Iterator[Page]:
    """A phone-sized browser signed in as the member."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, storage_state=member_state
    )
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def anon_page(browser: Browser) -> Iterator[Page]:
    """A desktop browser nobody has signed in with."""
    context = browser.new_context(viewport=DESKTOP)
    opened = context.new_page()
    yield opened
    context.close()
