"""The environment matrix shows each environment's freeze window in force, or the next one to come."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.deploys.helpers import Node, parse_html, put_environments
from tests.helpers import bearer

ENVIRONMENTS = (("staging", "Staging", False), ("production", "Production", True), ("dr", "DR", True))


@pytest.fixture
def admin(settings: Settings, clock: FrozenClock, admin_token: str) -> Iterator[TestClient]:
    app: FastAPI = create_app(settings, clock=clock)
    with TestClient(app, headers=bearer(admin_token)) as client:
        yield client
    app.state.runtime.close()


def freeze(client: TestClient, environment: str, starts: str, ends: str, reason: str, **more: bool) -> None:
    body = {"starts_at": starts, "ends_at": ends, "reason": reason, **more}
    response = client.post(f"/api/v1/environments/{environment}/freezes", json=body)
    assert response.status_code == 201, response.text


def headers(doc: Node) -> dict[str, Node]:
    return {
        th.attrs["data-environment"]: th
        for th in doc.by_id("matrix").all("th")
        if "data-environment" in th.attrs
    }


def words(notice: Node) -> tuple[str, str]:
    """The notice's line and its reason."""
    reason = notice.all("div", cls="freeze-reason")[0].text()
    return notice.text().removesuffix(reason).strip(), reason


def test_each_environment_shows_its_freeze_in_force_or_the_next_one(admin: TestClient) -> None:
    """The clock is at 2026-11-25 12:00 UTC."""
    put_environments(admin, ENVIRONMENTS)
    freeze(admin, "production", "2026-11-25T08:00:00Z", "2026-11-27T18:00:00Z", "Release weekend")
    freeze(admin, "production", "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z", "Later, not shown")
    freeze(admin, "staging", "2026-11-27T16:00:00Z", "2026-11-30T08:00:00Z", "Weekends", weekly=True)
    freeze(admin, "dr", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "Over, not shown")

    response = admin.get("/environments")
    assert response.status_code == 200, response.text
    doc = parse_html(response.text)

    found = headers(doc)
    production = found["production"].all("div", cls="freeze")[0]
    assert (production.attrs["data-active"], words(production)) == (
        "true",
        ("frozen ends in 2 d", "Release weekend"),
    )
    assert [t.attrs["datetime"] for t in production.all("time")] == ["2026-11-27T18:00:00+00:00"]
    staging = found["staging"].all("div", cls="freeze")[0]
    assert (staging.attrs["data-active"], words(staging)) == (
        "false",
        ("freeze starts in 2 d, ends in 4 d (every week)", "Weekends"),
    )
    assert found["dr"].all("div", cls="freeze") == []
    assert doc.find("freeze-legend") is not None


def test_without_freeze_windows_the_matrix_says_nothing_of_them(admin: TestClient) -> None:
    put_environments(admin, ENVIRONMENTS)

    doc = parse_html(admin.get("/environments").text)

    assert doc.find("freeze-legend") is None
    assert all(not th.all("div", cls="freeze") for th in headers(doc).values())
