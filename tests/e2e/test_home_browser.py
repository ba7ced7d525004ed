"""The home in Chromium, on both databases: a member of the team that owns checkout-api opens /, sees the
approval waiting for them and who asked, stars a service from its page and finds it on the home; on a
390 px phone the home fits the screen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, GlobalRole, TeamRoleName
from quarterdeck.db import transaction
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from tests.e2e.conftest import LiveApp

ASKER = "asker@e2e.example"
SERVICE = "checkout-api"
STARRED = "payments-api"
"""A service of another team: on the member's home only once starred."""


@pytest.fixture(scope="module")
def checkout_team(live_app: LiveApp) -> LiveApp:
    """The member joins team checkout; staging and production, checkout-api live in both; another member
    of checkout asked an hour ago to ship checkout-api 9.9.9 to production."""
    now = datetime.now(UTC)
    system = Actor.system("e2e")
    asker_id = access_id(live_app, live_app.add_user(ASKER, teams={"checkout": "member"}))
    with transaction(live_app.sessions) as session:
        member = access.find_user(session, live_app.member_email)
        access.set_team_role(session, system, member.id, "checkout", TeamRoleName.MEMBER, at=now)
        for position, (slug, production) in enumerate([("staging", False), ("production", True)]):
            body = EnvironmentIn(name=slug.title(), position=position, production=production)
            deploys.put_environment(session, system, slug, body, at=now)
        for env, minutes in (("staging", 50), ("production", 40)):
            started = now - timedelta(minutes=minutes)
            report = DeployReport(
                id=f"e2e-home:{env}",
                service=SERVICE,
                environment=env,
                version="3.0.0",
                status="succeeded",
                started_at=started,
                finished_at=started + timedelta(minutes=4),
            )
            deploys.report(session, system, [report], at=now)
        asker = Actor(
            kind="user",
            name=ASKER,
            role=GlobalRole.MEMBER,
            user_id=asker_id,
            teams={"checkout": TeamRoleName.MEMBER},
        )
        deploys.ask_to_deploy(
            session,
            asker,
            service=SERVICE,
            environment="production",
            version="9.9.9",
            summary="Ship the new cart totals",
            at=now - timedelta(hours=1),
        )
    return live_app


def access_id(app: LiveApp, email: str) -> int:
    with app.sessions() as session:
        return access.find_user(session, email).id


def test_the_member_sees_what_waits_stars_a_service_and_finds_it_home(
    checkout_team: LiveApp, page: Page
) -> None:
    base = checkout_team.url
    page.goto(base + "/")

    waiting = page.locator("#waiting tr[data-approval-id]")
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text(SERVICE)
    expect(waiting).to_contain_text("9.9.9")
    expect(waiting.locator(".requested-by")).to_have_text(ASKER)
    expect(waiting.locator("time")).to_have_text("1 h ago")
    expect(
        page.locator(f'#my-services tr[data-service="{SERVICE}"] td[data-environment="production"]')
    ).to_contain_text("3.0.0")
    expect(page.locator("#no-stars")).to_be_visible()

    page.goto(f"{base}/services/{STARRED}")
    star = page.locator(".star-button")
    expect(star).to_have_attribute("aria-pressed", "false")
    expect(star).to_have_accessible_name("Star Payments API")
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    expect(star).to_be_focused()  # htmx swapped the button in place and kept the focus on it

    page.goto(base + "/")
    starred = page.locator(f'#stars li[data-star="service:{STARRED}"]')
    expect(starred).to_contain_text("Payments API")
    expect(starred.locator(".star-button")).to_have_attribute("aria-pressed", "true")


def test_the_home_fits_a_phone(checkout_team: LiveApp, phone: Page) -> None:
    phone.goto(checkout_team.url + "/", wait_until="networkidle")

    expect(phone.locator("#my-services")).to_be_visible()
    expect(phone.locator("#waiting")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
