"""Deploying from the browser, in Chromium, on both databases: a member of the owning team presses
Deploy, watches the steps of a short pipeline advance live (no reload) with the wait's countdown going
down, an owner of the team approves in a second browser, and the page ends on succeeded. The app's own
embedded worker runs the steps through the real `command` driver; a phone-sized screen shows the same
page without sideways scrolling, and someone of another team sees why they may not deploy."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from quarterdeck.access.schemas import Actor, GlobalRole
from quarterdeck.catalog import service as catalog
from quarterdeck.db import transaction
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from tests.conftest import make_token
from tests.deploys.helpers import recording_drivers
from tests.e2e.accessibility import axe_violations
from tests.e2e.conftest import DESKTOP, AppSettings, LiveApp, WallClock, sign_in

SERVICE = "checkout-api"
PIPELINE = {
    "name": "short-canary",
    "steps": [
        {"deploy": {"weight": 10}},
        {"wait": {"duration": "6s"}},
        {"approval": {"who": {"team_role": "owner"}, "two_person": True}},
        {"deploy": {"weight": 100}},
    ],
}


@pytest.fixture(scope="module")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drivers file: the `command` driver appends each call to calls.log beside it."""
    folder = tmp_path_factory.mktemp("drivers")
    return recording_drivers(folder / "drivers.yaml", folder / "calls.log")


@pytest.fixture(scope="module")
def app_settings(drivers: Path) -> AppSettings:
    """The served app runs its embedded worker (the default) with the command driver."""
    return lambda base_url: {"deploy_drivers": drivers, "deploy_state_dir": drivers.parent / "state"}


@dataclass(frozen=True)
class Team:
    deployer: str
    approver: str
    outsider: str
    calls: Path


@pytest.fixture(scope="module")
def team(live_app: LiveApp, drivers: Path) -> Team:
    """Dev and staging; checkout-api 2.0.0 live in staging, 2.1.0 in dev; the short pipeline in staging;
    a member of its team (deploys), an owner (approves) and someone of another team."""
    now = datetime.now(UTC)
    system = Actor.system("e2e")
    with transaction(live_app.sessions) as session:
        owner = catalog.service_ref(session, SERVICE).owner
        for position, slug in enumerate(["dev", "staging"]):
            deploys.put_environment(
                session, system, slug, EnvironmentIn(name=slug.title(), position=position), at=now
            )
        for env, version in (("staging", "2.0.0"), ("dev", "2.1.0")):
            started = now - timedelta(minutes=5)
            report = DeployReport(
                id=f"e2e-rollout:{env}:{version}",
                service=SERVICE,
                environment=env,
                version=version,
                status="succeeded",
                started_at=started,
                finished_at=started + timedelta(minutes=1),
            )
            deploys.report(session, system, [report], at=now)
    assert owner is not None
    admin = live_app.add_user("rollout-admin@e2e.example", role=GlobalRole.ADMIN)
    token = make_token(live_app.sessions, WallClock(), user=admin, scopes=["admin"])
    response = httpx.put(
        f"{live_app.url}/api/v1/pipelines/service/{SERVICE}?environment=staging",
        json=PIPELINE,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 201), response.text
    return Team(
        deployer=live_app.add_user("deployer@e2e.example", teams={owner: "member"}),
        approver=live_app.add_user("approver@e2e.example", teams={owner: "owner"}),
        outsider=live_app.member_email,
        calls=drivers.parent / "calls.log",
    )


def countdown_left(page: Page) -> int:
    value = page.locator("#step-2 .countdown-value").get_attribute("data-left")
    assert value is not None
    return int(value)


def test_deploy_watch_it_advance_live_and_a_second_person_approves(
    browser: Browser, live_app: LiveApp, team: Team
) -> None:
    deployer = browser.new_context(viewport=DESKTOP)
    approver = browser.new_context(viewport=DESKTOP)
    try:
        page = deployer.new_page()
        sign_in(page, live_app.url, team.deployer, live_app.password)
        page.goto(f"{live_app.url}/services/{SERVICE}/deploys")
        form = page.locator("#deploy-form")
        expect(form).to_be_visible()
        expect(page.locator("#deploy-version")).to_have_value("2.1.0")
        page.locator("#deploy-environment").select_option("staging")
        page.get_by_role("button", name="Deploy", exact=True).click()
        expect(page).to_have_url(re.compile(r"/rollouts/\d+$"))
        page.evaluate("window.qdNotReloaded = true")

        # The steps move on by themselves: the canary takes 10 %, then the wait counts down.
        expect(page.locator("#step-1")).to_have_attribute("data-state", "succeeded", timeout=15_000)
        expect(page.locator("#step-2")).to_have_attribute("data-state", "waiting")
        expect(page.locator("#step-1")).to_contain_text("Canary traffic: 10 %")
        expect(page.locator("#step-2 .countdown-value")).to_have_attribute("data-left", re.compile(r"^\d+$"))
        first = countdown_left(page)
        page.wait_for_timeout(2_100)
        later = countdown_left(page)
        assert 0 <= later < first <= 6, (first, later)

        # The approval waits for an owner of the team; the deployer has no button to give it.
        step = page.locator("#step-3")
        expect(step).to_have_attribute("data-state", "waiting", timeout=15_000)
        expect(step).to_contain_text("Waiting for an owner of team")
        expect(page.locator("#rollout-state")).to_have_attribute("data-state", "waiting_approval")
        expect(page.locator("button[data-control='approve']")).to_have_count(0)

        second = approver.new_page()
        sign_in(second, live_app.url, team.approver, live_app.password)
        second.goto(page.url)
        second.locator("button[data-control='approve']").click()
        expect(second.locator("#step-3")).to_contain_text("approved by", timeout=15_000)

        expect(page.locator("#rollout-state")).to_have_attribute("data-state", "succeeded", timeout=20_000)
        expect(page.locator("#step-4")).to_have_attribute("data-state", "succeeded")
        expect(page.locator("#rollout-connection")).to_have_text("The rollout is finished.")
        assert page.evaluate("window.qdNotReloaded") is True  # it all came live, without a reload
    finally:
        deployer.close()
        approver.close()
    methods = [line.split()[0] for line in team.calls.read_text().splitlines()]
    assert methods == ["prepare", "set_traffic", "promote"]


def test_on_a_phone_the_rollout_fits_and_an_outsider_is_told_why_not(
    phone: Page, live_app: LiveApp, team: Team
) -> None:
    """The member of the e2e app is in no team; the rollout is the one the test above finished."""
    phone.goto(f"{live_app.url}/services/{SERVICE}/deploys")
    expect(phone.locator("#deploy-not-allowed")).to_have_text(
        re.compile(r"^Only members of team \S+ can deploy it\.$")
    )
    expect(phone.locator("#deploy-form")).to_have_count(0)
    rollout = phone.locator("#rollouts a[href^='/rollouts/']").first
    expect(rollout).to_be_visible()
    rollout.click()
    expect(phone.locator("#rollout-steps li")).to_have_count(4)
    expect(phone.locator("#rollout-controls")).to_have_count(0)  # finished: nothing to control
    overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the rollout page scrolls sideways by {overflow}px at 390px"
    assert axe_violations(phone) == []
    phone.set_viewport_size({"width": 1400, "height": 900})
    assert axe_violations(phone) == []
