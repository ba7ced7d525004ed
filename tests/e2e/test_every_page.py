"""Every page of the portal as a person sees it, in Chromium, on both databases: signed in as an admin
and as a member of the team that owns checkout, at 390 px and 1400 px wide. Each page must not
overflow horizontally, must log no console error, and axe-core (WCAG 2.0 and 2.1, A and AA rules)
must find no violation. A screenshot of each is written under test-results/pages/ (or
$QD_SCREENSHOTS) for review.

axe-core comes from the npm registry at the version tests/e2e/axe/package-lock.json pins
(scripts/install-test-deps.sh installs it) and is injected into each page by the test.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, StorageState

from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.db import transaction
from quarterdeck.deploys import change_requests
from quarterdeck.jobs import service as jobs
from tests.conftest import ROOT
from tests.e2e.accessibility import AXE, axe_violations
from tests.e2e.conftest import LiveApp, sign_in

SHOTS = Path(os.environ.get("QD_SCREENSHOTS", ROOT / "test-results" / "pages"))
WIDTHS = (390, 1400)
ADMIN_EMAIL = "admin@e2e.example"
OWNER_EMAIL = "checkout-dev@e2e.example"
SERVICE = "checkout-api"


@dataclass(frozen=True)
class Portal:
    """The example organisation with environments, its deploy history and an approval waiting."""

    app: LiveApp
    admin: StorageState
    member: StorageState
    deploy_path: str
    job_path: str


def _cli(app: LiveApp, *args: str) -> None:
    url = app.sessions.kw["bind"].url.render_as_string(hide_password=False)
    env = {**os.environ, "QD_DATABASE_URL": url}
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "quarterdeck"), *args],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
    )


def _signed_in(browser: Browser, app: LiveApp, email: str) -> StorageState:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        sign_in(context.new_page(), app.url, email, app.password)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture(scope="module")
def portal(browser: Browser, live_app: LiveApp) -> Portal:
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `make test-deps`")
    _cli(live_app, "environments", "apply", "examples/environments.yaml")
    _cli(live_app, "deploys", "report", "--file", "examples/deploys.yaml")
    live_app.add_user(ADMIN_EMAIL, role=GlobalRole.ADMIN)
    live_app.add_user(OWNER_EMAIL, teams={"checkout": "member"})
    with transaction(live_app.sessions) as session:
        change_requests.ask_to_deploy(
            session,
            Actor.system("e2e"),
            service=SERVICE,
            environment="production-eu",
            version="9.9.9",
            summary="Ship the new cart totals",
            at=datetime.now(UTC),
        )
        jobs.enqueue(
            session, "catalog.sync_source", {"source_id": 1}, now=datetime.now(UTC) + timedelta(days=1)
        )
    admin = _signed_in(browser, live_app, ADMIN_EMAIL)
    context = browser.new_context(storage_state=admin)
    page = context.new_page()
    page.goto(f"{live_app.url}/services/{SERVICE}/deploys")
    deploy_path = page.locator("a[href^='/deploys/']").first.get_attribute("href")
    page.goto(f"{live_app.url}/admin/jobs")
    job_path = page.locator("a[href^='/admin/jobs/']").first.get_attribute("href")
    context.close()
    assert deploy_path is not None and job_path is not None
    return Portal(live_app, admin, _signed_in(browser, live_app, OWNER_EMAIL), deploy_path, job_path)


SHARED_PAGES = [
    "/",
    "/search?q=checkout",
    "/services",
    f"/services/{SERVICE}",
    f"/services/{SERVICE}/deploys",
    f"/services/{SERVICE}/pipeline",
    "/deploys",
    "{deploy}",
    "/environments",
    "/approvals",
    "/teams",
    "/teams/checkout",
    "/people",
    "/people/wei.zhang@northwind.example",
    "/systems",
    "/systems/order-checkout",
    "/account",
    "/services/no-such-service",
]
ADMIN_PAGES = [
    f"/services/{SERVICE}/edit",
    "/admin/users",
    "/admin/audit",
    "/admin/sources",
    "/admin/references",
    "/admin/jobs",
    "{job}",
    "/admin/environments",
]
CASES = [("member", path) for path in SHARED_PAGES] + [("admin", path) for path in SHARED_PAGES + ADMIN_PAGES]
ON_POSTGRESQL = {("member", "/"), ("member", f"/services/{SERVICE}"), ("member", "/deploys"), ("admin", "/")}
ON_POSTGRESQL |= {("admin", path) for path in ADMIN_PAGES}
"""The layout and markup of a page do not depend on the database, so PostgreSQL runs every admin page
and one page of each kind a member sees; SQLite runs them all (the whole run stays inside CI's time)."""


def _shot_name(role: str, width: int, path: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in path.strip("/")) or "home"
    return f"{role}-{width}-{cleaned[:80]}.png"


@pytest.fixture
def role_page(request: pytest.FixtureRequest, browser: Browser, portal: Portal) -> Iterator[Page]:
    role = request.node.callspec.params["role"]
    state = portal.admin if role == "admin" else portal.member
    context = browser.new_context(viewport={"width": 1400, "height": 900}, storage_state=state)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize(("role", "path"), CASES, ids=[f"{r}:{p}" for r, p in CASES])
def test_page_fits_logs_no_error_and_passes_axe(
    request: pytest.FixtureRequest, role_page: Page, portal: Portal, role: str, path: str
) -> None:
    if request.node.callspec.params["live_app"] == "postgresql" and (role, path) not in ON_POSTGRESQL:
        pytest.skip("this page's layout is checked on SQLite")
    target = path.format(deploy=portal.deploy_path, job=portal.job_path)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not (path.startswith("/services/no-such") and "404" in message.text):
            errors.append(message.text)

    role_page.on("console", on_console)
    role_page.on("pageerror", lambda exc: errors.append(str(exc)))
    problems: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        role_page.set_viewport_size({"width": width, "height": 900})
        response = role_page.goto(portal.app.url + target, wait_until="networkidle")
        assert response is not None
        expected = 404 if "no-such" in path else 200
        assert response.status == expected, f"{target}: HTTP {response.status}"
        assert "/login" not in role_page.url, f"{target}: sent to sign in"
        overflow = role_page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 0:
            wide = role_page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                  .filter(e => !e.closest('.table-wrap, .scroll-x'))
                  .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                    + (typeof e.className === 'string' && e.className
                       ? '.' + e.className.split(' ').join('.') : ''))"""
            )
            problems.append(f"{width}px: {overflow}px wider than the screen: {wide}")
        for violation in axe_violations(role_page):
            problems.append(f"{width}px: axe {violation}")
        role_page.screenshot(path=str(SHOTS / _shot_name(role, width, target)), full_page=True)
    assert not errors, f"{target}: console errors {errors}"
    assert not problems, f"{target} as {role}:\n" + "\n".join(problems)
