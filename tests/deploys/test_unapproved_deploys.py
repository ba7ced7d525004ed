"""Tier-1 production deploys that shipped without an approval are flagged: in the API answer for the
deploy, on its page, in the service's history and in the feed (with an "only unapproved" filter).

The rule is judged on the deploy's own record: the service's tier when it was reported, its environment,
and the approved change request linked to it (named in the report as `approval`, or found: approved
before the deploy started, for the same service, environment and version). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock
from tests.conftest import make_token, make_user
from tests.deploys.helpers import SERVICE, TEAM, Node, cells, parse_html, post, report, reporter, shop
from tests.helpers import Json, bearer, create_service, error_of

UNAPPROVED = "unapproved_tier1_production"


@dataclass
class Org:
    """Team shop with tier-1 `checkout` and tier-2 `cart`; CI's client; alice asks, bob approves."""

    admin: TestClient
    ci: TestClient
    alice: TestClient
    bob: TestClient
    clock: FrozenClock

    def approved(self, version: str = "1.1.0", environment: str = "production") -> int:
        """A request to ship `version` of checkout, asked by alice and approved by bob now."""
        asked = self.alice.post(
            "/api/v1/approvals", json={"service": SERVICE, "environment": environment, "version": version}
        )
        assert asked.status_code == 201, asked.text
        approval: int = asked.json()["id"]
        decided = self.bob.post(f"/api/v1/approvals/{approval}/approve")
        assert (decided.status_code, decided.json()["status"]) == (200, "approved"), decided.text
        return approval

    def later(self, minutes: float = 10) -> None:
        self.clock.at += timedelta(minutes=minutes)


@pytest.fixture
def org(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[Org]:
    shop(client, image=None)
    create_service(client, "cart", TEAM, tier=2)
    with ExitStack() as stack:
        people = {}
        for name in ("alice", "bob"):
            email = f"{name}@example.com"
            make_user(sessions, clock, email, teams={TEAM: "member"})
            token = make_token(sessions, clock, user=email, scopes=["deploy"], name=name)
            people[name] = stack.enter_context(TestClient(app_under_test, headers=bearer(token)))
        ci = stack.enter_context(reporter(app_under_test, sessions, clock))
        yield Org(client, ci, people["alice"], people["bob"], clock)


def shipped(org: Org, version: str = "1.1.0", environment: str = "production", **fields: Any) -> Json:
    """CI reports a deploy that started 5 minutes ago and took 4: the answer's deploy."""
    body = report(version, environment, started=5, finished=1, now=org.clock.at, **fields)
    deploy: Json = post(org.ci, body)["deploy"]
    return deploy


def codes(deploy: Json) -> list[str]:
    return [flag["code"] for flag in deploy["flags"]]


def page_of(client: TestClient, url: str) -> Node:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return parse_html(response.text)


def feed_rows(client: TestClient, query: str = "") -> list[list[str]]:
    """(service, version, environment, status cell) of each row of the /deploys page."""
    [body] = page_of(client, f"/deploys{query}").by_id("feed").all("tbody")
    return [cells(row)[:4] for row in body.all("tr")]


# ---------------------------------------------------------------- the rule, case by case


CASES = [
    # tier 1, production, nothing approved: flagged
    ("checkout", "production", None, [UNAPPROVED]),
    # tier 1, production, the approved request named in the report
    ("checkout", "production", "named", []),
    # tier 1, production, an approved request for this very version found without being named
    ("checkout", "production", "found", []),
    # tier 2 in production needs nobody
    ("cart", "production", None, []),
    # tier 1 outside production needs nobody
    ("checkout", "staging", None, []),
]


@pytest.mark.parametrize(("service", "environment", "approval", "flags"), CASES)
def test_only_a_tier_1_production_deploy_without_an_approval_is_flagged(
    org: Org, service: str, environment: str, approval: str | None, flags: list[str]
) -> None:
    approval_id = org.approved() if approval else None
    org.later()
    named: dict[str, Any] = {"approval": approval_id} if approval == "named" else {}

    deploy = shipped(org, environment=environment, service=service, **named)

    assert codes(deploy) == flags
    assert deploy["approval"] == approval_id
    assert deploy["service_tier"] == (1 if service == "checkout" else 2)
    assert codes(org.admin.get(f"/api/v1/deploys/{deploy['id']}").json()) == flags
    page = page_of(org.admin, deploy["url"])
    assert (page.find("deploy-flags") is not None) == bool(flags)
    status_cell = f"succeeded{' unapproved' if flags else ''}"
    assert feed_rows(org.admin) == [[service, "1.1.0", environment, status_cell]]


def test_the_flag_is_said_on_the_deploy_page_the_history_and_the_feed(org: Org) -> None:
    flagged = shipped(org)
    org.later()
    shipped(org, "1.1.0", "staging")
    shipped(org, "1.0.0", "production", service="cart")

    [flag] = flagged["flags"]
    assert flag == {
        "code": UNAPPROVED,
        "message": "Tier-1 production deploy without an approval: nobody approved shipping checkout 1.1.0 "
        "to Production. Ask first (POST /api/v1/approvals) and report the approved request's id as "
        "`approval`.",
    }
    page = page_of(org.admin, flagged["url"])
    assert page.by_id("deploy-flags").text() == flag["message"]
    assert [b.text() for b in page.all("span", cls="deploy-flag")] == ["unapproved"]
    assert page.by_id("deploy-approval").text() == "none linked"
    history = page_of(org.admin, f"/services/{SERVICE}/deploys").by_id("deploy-history")
    assert [r.attrs.get("class") for r in history.all("tr") if "data-deploy-id" in r.attrs] == [
        None,
        "flagged",
    ]
    assert feed_rows(org.admin) == [
        ["cart", "1.0.0", "production", "succeeded"],
        ["checkout", "1.1.0", "staging", "succeeded"],
        ["checkout", "1.1.0", "production", "succeeded unapproved"],
    ]
    # only the flagged ones, on the page and over the API
    assert feed_rows(org.admin, "?flagged=true") == [
        ["checkout", "1.1.0", "production", "succeeded unapproved"]
    ]
    only = org.admin.get("/api/v1/deploys?flagged=true").json()
    assert ([d["id"] for d in only["items"]], only["total"]) == ([flagged["id"]], 1)
    assert org.admin.get(f"/api/v1/services/{SERVICE}/deploys?flagged=true").json()["total"] == 1


def test_the_tier_the_deploy_was_reported_under_is_what_counts(org: Org) -> None:
    """Lowering the tier afterwards does not clear a flag; raising it does not flag a past deploy."""
    flagged = shipped(org)
    fine = shipped(org, "1.0.0", service="cart")

    for slug, tier in ((SERVICE, 2), ("cart", 1)):
        changed = org.admin.patch(f"/api/v1/services/{slug}", json={"tier": tier})
        assert changed.status_code == 200, changed.text

    assert codes(org.admin.get(f"/api/v1/deploys/{flagged['id']}").json()) == [UNAPPROVED]
    assert codes(org.admin.get(f"/api/v1/deploys/{fine['id']}").json()) == []


def test_an_approval_covers_its_version_only_and_only_from_when_it_was_given(org: Org) -> None:
    org.approved("1.1.0")
    org.later()

    other_version = shipped(org, "1.2.0")
    before_it = post(org.ci, report("1.1.0", started=60, finished=50, now=org.clock.at))["deploy"]

    assert (codes(other_version), other_version["approval"]) == ([UNAPPROVED], None)
    # started 50 minutes before the approval was given: it shipped unapproved
    assert (codes(before_it), before_it["approval"]) == ([UNAPPROVED], None)


# ---------------------------------------------------------------- naming the approval


def test_a_named_approval_that_cannot_vouch_for_the_deploy_is_refused(org: Org) -> None:
    approved = org.approved("1.1.0")
    pending = org.alice.post(
        "/api/v1/approvals", json={"service": SERVICE, "environment": "production", "version": "1.1.0"}
    ).json()["id"]
    org.later()
    refusals = [
        # nobody approved it yet
        (pending, "1.1.0", "production", f"approval {pending} is pending, not approved"),
        # approved for another version
        (approved, "1.2.0", "production", f"approval {approved} is for version 1.1.0, not 1.2.0"),
        # approved for another environment
        (
            approved,
            "1.1.0",
            "staging",
            f"approval {approved} is about deploy of service checkout to production",
        ),
        # no such request
        (4242, "1.1.0", "production", "approval 4242 does not exist"),
    ]
    for approval, version, environment, says in refusals:
        body = report(version, environment, started=5, finished=1, now=org.clock.at, approval=approval)

        error = error_of(org.ci.post("/api/v1/deploys", json=body), 422, "deploys.bad_approval")

        assert says in error["message"], error
        assert [d["field"] for d in error["details"]] == ["approval"]
    assert org.admin.get("/api/v1/deploys").json()["total"] == 0


def test_a_later_report_may_name_the_approval_a_running_deploy_ships_under(org: Org) -> None:
    approval = org.approved()
    org.later()
    running = post(org.ci, report("1.1.0", status="running", id="run-1", started=1, now=org.clock.at))
    # found already: the request for this version was approved before it started
    assert (running["deploy"]["approval"], codes(running["deploy"])) == (approval, [])

    other = org.approved()
    refused = org.ci.post(
        "/api/v1/deploys",
        json=report("1.1.0", id="run-1", started=1, finished=0, now=org.clock.at, approval=other),
    )
    assert error_of(refused, 409, "deploys.approval_mismatch")["message"] == (
        f"deploy id 'run-1' shipped under approval {approval}, not {other}"
    )


def test_naming_the_approval_in_a_later_report_clears_the_flag(org: Org) -> None:
    # a request for no version in particular is linked only when a report names it
    asked = org.alice.post("/api/v1/approvals", json={"service": SERVICE, "environment": "production"})
    approval = asked.json()["id"]
    assert org.bob.post(f"/api/v1/approvals/{approval}/approve").status_code == 200
    org.later()
    started = post(org.ci, report("1.2.0", status="running", id="run-2", started=1, now=org.clock.at))[
        "deploy"
    ]
    assert codes(started) == [UNAPPROVED]

    again = post(
        org.ci,
        report("1.2.0", status="running", id="run-2", started=1, now=org.clock.at, approval=approval),
        200,
    )

    assert (again["outcome"], again["deploy"]["approval"], codes(again["deploy"])) == (
        "updated",
        approval,
        [],
    )
    done = post(
        org.ci, report("1.2.0", id="run-2", started=1, finished=0, now=org.clock.at, approval=approval), 200
    )
    assert (done["outcome"], done["deploy"]["status"], codes(done["deploy"])) == ("updated", "succeeded", [])
    page = page_of(org.admin, started["url"])
    assert (page.find("deploy-flags"), page.by_id("deploy-approval").text()) == (None, f"request #{approval}")
