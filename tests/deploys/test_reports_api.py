"""Deploy reports over HTTP (POST /api/v1/deploys) and what they feed: history, live versions, the feed,
what changed, the environment matrix, and approvals of production changes.

Runs on SQLite and PostgreSQL (conftest's `db_url`); each test builds its little organisation through
the API: environments staging and production, team `shop`, its tier-1 service `checkout`. Tables of
cases that need no fresh database each are checked in one test, a row at a time, to keep the suite fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.clock import FrozenClock
from tests.conftest import make_token, make_user
from tests.deploys.helpers import (
    COMMITS,
    IMAGE,
    SERVICE,
    TEAM,
    ago,
    audit_actions,
    count_rows,
    live_versions,
    post,
    report,
    shop,
    versions_of,
)
from tests.helpers import Json, bearer, create_service, create_team, error_of, problem

CI_TOKEN = "ci-shop"
"""The name of the deploy token the `ci` client reports with (team shop, scope deploy)."""


def event(from_status: str | None, to_status: str) -> Json:
    """A status change of a deploy as the `ci` client's report at the frozen clock's time records it."""
    return {
        "from_status": from_status,
        "to_status": to_status,
        "at": "2026-11-25T12:00:00Z",
        "actor": f"token:{CI_TOKEN}",
        "reason": "reported by ci",
    }


@pytest.fixture
def ci(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[TestClient]:
    """The organisation set up by an admin (`client`), and CI reporting with a team deploy token."""
    shop(client, image=None)
    token = make_token(sessions, clock, user=None, scopes=["deploy"], team="shop", name=CI_TOKEN)
    with TestClient(app_under_test, headers=bearer(token)) as ci_client:
        yield ci_client


def first_problem(response: Response) -> tuple[int, str | None, str | None]:
    """(status, code, the one field named) of an error answer: a bad report names exactly one field."""
    status, code, fields = problem(response)
    assert len(fields) <= 1, fields
    return status, code, fields[0] if fields else None


def history(client: TestClient, query: str = "") -> Json:
    response = client.get(f"/api/v1/services/{SERVICE}/deploys{query}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


# ---------------------------------------------------------------- one report


def test_a_good_report_is_stored_live_and_audited(ci: TestClient, sessions: sessionmaker[Session]) -> None:
    response = ci.post("/api/v1/deploys", json=report(notes="Faster carts"))

    assert response.status_code == 201, response.text
    answer = response.json()
    deploy_id = answer["deploy"]["id"]
    assert answer == {
        "outcome": "created",
        "deploy": {
            "id": deploy_id,
            "external_id": "ci:checkout:production:1.0.0",
            "service": "checkout",
            "environment": "production",
            "status": "succeeded",
            "source": "ci",
            "deployed_by": f"token:{CI_TOKEN}",
            "started_at": "2026-11-25T11:00:00Z",
            "finished_at": "2026-11-25T11:10:00Z",
            "notes": "Faster carts",
            "release": {
                "version": "1.0.0",
                "image": f"{IMAGE}:1.0.0",
                "digest": None,
                "commit": COMMITS["1.0.0"],
                "notes": "Faster carts",
                "created_by": f"token:{CI_TOKEN}",
                "created_at": "2026-11-25T12:00:00Z",
            },
            "url": f"/deploys/{deploy_id}",
            "service_tier": 1,
            "approval": None,
            "flags": [
                {
                    "code": "unapproved_tier1_production",
                    "message": "Tier-1 production deploy without an approval: nobody approved shipping "
                    "checkout 1.0.0 to Production. Ask first (POST /api/v1/approvals) and report the "
                    "approved request's id as `approval`.",
                }
            ],
        },
    }
    assert ci.get(f"/api/v1/deploys/{deploy_id}").json() == {
        **answer["deploy"],
        "events": [event(None, "succeeded")],
    }
    assert count_rows(sessions) == (1, 1)
    assert audit_actions(sessions, deploy_id) == ["deploy.report"]
    assert live_versions(ci) == {"staging": None, "production": "1.0.0"}


def test_a_release_is_recorded_once_and_filled_in_by_later_reports(
    ci: TestClient, sessions: sessionmaker[Session]
) -> None:
    digest = "sha256:" + "ab" * 32
    bare = post(ci, report("1.0.0", "staging", image=None, commit=None))["deploy"]["release"]
    assert (bare["image"], bare["digest"], bare["commit"]) == (None, None, None)

    # production's report knows the image, pinned by digest, and the commit
    filled = post(ci, report("1.0.0", "production", image=f"{IMAGE}@{digest}"))["deploy"]["release"]
    # a later report leaving them out changes nothing
    again = post(ci, report("1.0.0", "staging", id="again", image=None, commit=None))["deploy"]["release"]

    assert (filled["image"], filled["digest"], filled["commit"]) == (
        f"{IMAGE}@{digest}",
        digest,
        COMMITS["1.0.0"],
    )
    assert again == filled
    assert count_rows(sessions) == (3, 1)


def test_a_replayed_report_changes_nothing(ci: TestClient, sessions: sessionmaker[Session]) -> None:
    first = post(ci, report(), 201)

    again = post(ci, report(), 200)

    assert again == {"outcome": "unchanged", "deploy": first["deploy"]}
    assert count_rows(sessions) == (1, 1)
    assert audit_actions(sessions, first["deploy"]["id"]) == ["deploy.report"]
    assert history(ci)["total"] == 1


@pytest.mark.parametrize(
    ("first", "then", "status", "outcome", "live"),
    [
        # a running deploy finishing well: it becomes the live version
        ("running", "succeeded", 200, "updated", "1.0.0"),
        # a running deploy failing: nothing becomes live
        ("running", "failed", 200, "updated", None),
        # a running deploy rolled back before finishing
        ("running", "rolled_back", 200, "updated", None),
        # a finished deploy rolled back later: no longer live
        ("succeeded", "rolled_back", 200, "updated", None),
        # a finished deploy does not start running again
        ("succeeded", "running", 409, "deploys.bad_transition", "1.0.0"),
        # a failed deploy cannot be declared a success afterwards
        ("failed", "succeeded", 409, "deploys.bad_transition", None),
        # nor restarted
        ("failed", "running", 409, "deploys.bad_transition", None),
        # a rolled-back deploy is final
        ("rolled_back", "succeeded", 409, "deploys.bad_transition", None),
    ],
)
def test_the_same_id_moves_a_deploy_on_never_back(
    ci: TestClient,
    sessions: sessionmaker[Session],
    first: str,
    then: str,
    status: int,
    outcome: str,
    live: str | None,
) -> None:
    created = post(ci, report(status=first, id="run-7"), 201)["deploy"]

    response = ci.post("/api/v1/deploys", json=report(status=then, id="run-7", finished=40, notes="Finished"))

    if status == 200:
        assert response.status_code == 200, response.text
        moved = response.json()["deploy"]
        assert (response.json()["outcome"], moved["id"], moved["status"]) == (outcome, created["id"], then)
        assert (moved["finished_at"], moved["notes"]) == ("2026-11-25T11:20:00Z", "Finished")
        assert audit_actions(sessions, created["id"]) == ["deploy.report", "deploy.update"]
        assert ci.get(f"/api/v1/deploys/{created['id']}").json() == {
            **moved,
            "events": [event(None, first), event(first, then)],
        }
    else:
        error = error_of(response, 409, outcome)
        assert error["details"] == {"from": first, "to": then}
        assert f"is {first}; it cannot become {then}" in error["message"]
        assert ci.get(f"/api/v1/deploys/{created['id']}").json() == {
            **created,
            "events": [event(None, first)],
        }
        assert audit_actions(sessions, created["id"]) == ["deploy.report"]
    assert count_rows(sessions) == (1, 1)
    assert live_versions(ci)["production"] == live


REUSED: list[tuple[Json, str, Any]] = [
    # the id names a deploy of 1.0.0; this one says 1.1.0
    ({"id": "run-1", "version": "1.1.0"}, "deploys.id_reused", {"id": "run-1"}),
    # the id names a production deploy; this one says staging
    ({"id": "run-1", "environment": "staging"}, "deploys.id_reused", {"id": "run-1"}),
    # a new id, but version 1.0.0 was released as image :1.0.0
    (
        {"id": "run-2", "image": f"{IMAGE}:1.0.0-hotfix"},
        "deploys.release_mismatch",
        [{"field": "image", "message": f"expected {IMAGE}:1.0.0"}],
    ),
    # ... and from commit 1111111aaaaaaa
    (
        {"id": "run-2", "commit": "9999999fffffff"},
        "deploys.release_mismatch",
        [{"field": "commit", "message": f"expected {COMMITS['1.0.0']}"}],
    ),
]
"""(what the second report says differently from the first, error code, details)."""


def test_an_id_or_a_version_reused_for_something_else_is_refused(
    ci: TestClient, sessions: sessionmaker[Session]
) -> None:
    post(ci, report("1.0.0", id="run-1"))

    for change, code, details in REUSED:
        response = ci.post("/api/v1/deploys", json=report(**{"version": "1.0.0", **change}))

        assert error_of(response, 409, code)["details"] == details, change
    assert count_rows(sessions) == (1, 1)


# ---------------------------------------------------------------- batches


def test_a_batch_reports_each_deploy(ci: TestClient, sessions: sessionmaker[Session]) -> None:
    batch = [report("1.0.0", "staging"), report("1.0.0", "production"), report("1.1.0", "staging")]

    answers = post(ci, batch, 201)

    assert [(a["outcome"], a["deploy"]["external_id"]) for a in answers] == [
        ("created", "ci:checkout:staging:1.0.0"),
        ("created", "ci:checkout:production:1.0.0"),
        ("created", "ci:checkout:staging:1.1.0"),
    ]
    assert count_rows(sessions) == (3, 2)
    # replayed with one new report: 201 for the new one, the rest unchanged
    again = post(ci, [*batch, report("1.1.0", "production")], 201)
    assert [a["outcome"] for a in again] == ["unchanged", "unchanged", "unchanged", "created"]
    # nothing new at all: 200
    assert [a["outcome"] for a in post(ci, batch, 200)] == ["unchanged"] * 3
    assert count_rows(sessions) == (4, 2)


BAD_IN_BATCH: list[tuple[Json, int, int, str]] = [
    # the second report names an environment nobody set up
    ({"environment": "qa"}, 1, 404, "deploys.unknown_environment"),
    # the third finished before it started
    ({"finished": 70}, 2, 422, "deploys.bad_times"),
    # the second says version 1.0.0 came from another image than the first said
    ({"version": "1.0.0", "image": f"{IMAGE}:other", "id": "run-b"}, 1, 409, "deploys.release_mismatch"),
    # the third is reported by the team that does not own its service
    ({"service": "ledger"}, 2, 403, "access.forbidden"),
]
"""(how one report of the batch is bad, its index, status, error code)."""


def test_a_batch_with_one_bad_report_stores_nothing(
    ci: TestClient, client: TestClient, sessions: sessionmaker[Session]
) -> None:
    create_team(client, "payments")
    create_service(client, "ledger", "payments", tier=1)

    for bad, index, status, code in BAD_IN_BATCH:
        batch = [report("1.0.0", "staging"), report("1.1.0", "staging"), report("1.2.0", "staging")]
        batch[index] = report(**{"version": batch[index]["version"], "environment": "staging", **bad})

        response = ci.post("/api/v1/deploys", json=batch)

        error = error_of(response, status, code)
        assert error["message"].startswith(f"report {index} ({batch[index]['id']}): "), bad
        assert (error["details"]["index"], error["details"]["id"]) == (index, batch[index]["id"]), bad
        assert count_rows(sessions) == (0, 0), bad
    assert history(ci)["total"] == 0


def test_a_malformed_or_oversized_batch_stores_nothing(
    ci: TestClient, sessions: sessionmaker[Session]
) -> None:
    malformed = ci.post(
        "/api/v1/deploys", json=[report("1.0.0"), report("1.1 beta", id="b"), report("1.2.0")]
    )

    error = error_of(malformed, 422, "request.invalid")
    assert [d["field"] for d in error["details"]] == ["1.version"]

    oversized = ci.post("/api/v1/deploys", json=[report(id=f"run-{n}") for n in range(1001)])

    assert error_of(oversized, 422, "deploys.batch_too_big")["message"] == (
        "a batch holds at most 1000 reports, not 1001"
    )
    assert count_rows(sessions) == (0, 0)


# ---------------------------------------------------------------- bad input


BAD_REPORTS: list[tuple[Json, int, str, str | None]] = [
    # a service the catalog does not know
    ({"service": "nope"}, 404, "catalog.service_not_found", "service"),
    # an environment nobody set up
    ({"environment": "qa"}, 404, "deploys.unknown_environment", "environment"),
    # a space in the version
    ({"version": "1.0 beta"}, 422, "request.invalid", "version"),
    # no version at all
    ({"version": ""}, 422, "request.invalid", "version"),
    # a path, not a version
    ({"version": "../etc"}, 422, "request.invalid", "version"),
    # longer than 128 characters
    ({"version": "1" * 200}, 422, "request.invalid", "version"),
    # an upper-case repository is not an image reference
    ({"image": "registry.example.com/Shop/Checkout:1.0.0"}, 422, "deploys.bad_image", "image"),
    # a digest that is not sha256 of 64 hex digits
    ({"image": f"{IMAGE}@sha256:abc"}, 422, "deploys.bad_image", "image"),
    # not a commit id
    ({"commit": "HEAD~1"}, 422, "request.invalid", "commit"),
    # too short for a commit id
    ({"commit": "abc12"}, 422, "request.invalid", "commit"),
    # a time without a zone could be any time
    ({"started_at": "2026-11-25T11:00:00"}, 422, "request.invalid", "started_at"),
    # finished before it started
    ({"finished_at": ago(61)}, 422, "deploys.bad_times", "finished_at"),
    # started ten minutes from now (five are allowed for clock skew)
    ({"started_at": ago(-10), "finished_at": ago(-11)}, 422, "deploys.bad_times", "started_at"),
    # still running, yet finished
    ({"status": "running", "finished_at": ago(50)}, 422, "deploys.bad_times", "finished_at"),
    # a status CI systems do not mean
    ({"status": "done"}, 422, "request.invalid", "status"),
    # a field the report does not have
    ({"colour": "green"}, 422, "request.invalid", "colour"),
]
"""(what the report says instead, status, error code, first field named)."""


def test_a_bad_report_is_refused_naming_what_is_wrong(
    ci: TestClient, sessions: sessionmaker[Session]
) -> None:
    for n, (change, status, code, field) in enumerate(BAD_REPORTS):
        response = ci.post("/api/v1/deploys", json=report(id=f"run-{n}", **change))

        assert first_problem(response) == (status, code, field), change
    assert count_rows(sessions) == (0, 0)
    unknown_service = ci.post("/api/v1/deploys", json=report(service="nope"))
    assert unknown_service.json()["error"]["message"] == "service 'nope' is not in the catalog"
    unknown_env = ci.post("/api/v1/deploys", json=report(environment="qa"))
    assert unknown_env.json()["error"]["message"] == "no environment 'qa' (known: staging, production)"
    # the edge of the clock skew: four minutes ahead is accepted
    ahead = post(ci, report(started=-4, status="running"))
    assert ahead["deploy"]["started_at"] == "2026-11-25T12:04:00Z"


def test_a_misspelt_service_is_answered_with_the_nearest_names(
    ci: TestClient, client: TestClient, sessions: sessionmaker[Session]
) -> None:
    create_service(client, "checkout-worker", TEAM)

    misspelt = ci.post("/api/v1/deploys", json=report(service="chekout"))
    in_a_batch = ci.post("/api/v1/deploys", json=[report(), report(service="checkout-wroker", id="b")])

    error = error_of(misspelt, 404, "catalog.service_not_found")
    assert error["message"] == (
        "service 'chekout' is not in the catalog; did you mean 'checkout' or 'checkout-worker'?"
    )
    assert error["details"] == [
        {"field": "service", "message": "not in the catalog", "suggestions": ["checkout", "checkout-worker"]}
    ]
    batch_error = error_of(in_a_batch, 404, "catalog.service_not_found")
    assert batch_error["message"] == (
        "report 1 (b): service 'checkout-wroker' is not in the catalog; "
        "did you mean 'checkout-worker' or 'checkout'?"
    )
    assert count_rows(sessions) == (0, 0)


# ---------------------------------------------------------------- who may report


def test_reporting_needs_a_token(anon_client: TestClient, client: TestClient) -> None:
    shop(client, image=None)

    response = anon_client.post("/api/v1/deploys", json=report())

    error_of(response, 401, "access.sign_in_required")
    assert response.headers["www-authenticate"] == 'Bearer realm="quarterdeck"'


REPORTERS: list[tuple[str | None, list[str], str | None, str | None]] = [
    # a shop member's personal token without the deploy scope
    ("member@shop.example", ["read", "write:catalog"], None, "this token lacks the 'deploy' scope"),
    # a shop member's personal token with it
    ("member@shop.example", ["deploy"], None, None),
    # a viewer in team shop may read only, whatever the token says
    ("viewer@shop.example", ["deploy"], None, "viewers may only read"),
    # someone of another team
    (
        "other@payments.example",
        ["deploy"],
        None,
        "only members of team 'shop' may change the service 'checkout'",
    ),
    # a deploy token of another team
    (None, ["deploy"], "payments", "only members of team 'shop' may change the service 'checkout'"),
    # a deploy token of team shop
    (None, ["deploy"], "shop", None),
    # an organisation-wide deploy token
    (None, ["deploy"], None, None),
    # an organisation-wide token for reading only
    (None, ["read"], None, "this token lacks the 'deploy' scope"),
]
"""(user of a personal token or None for a service token, scopes, team of a service token, refusal)."""


def test_who_may_report_a_deploy(
    client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    shop(client, image=None)
    make_user(sessions, clock, "member@shop.example", teams={"shop": "member"})
    make_user(sessions, clock, "viewer@shop.example", role=GlobalRole.VIEWER, teams={"shop": "member"})
    make_user(sessions, clock, "other@payments.example", teams={"payments": "member"})
    stored = 0
    for n, (user, scopes, team, refusal) in enumerate(REPORTERS):
        token = make_token(sessions, clock, user=user, scopes=scopes, team=team, name=f"reporter-{n}")

        response = client.post("/api/v1/deploys", json=report(id=f"run-{n}"), headers=bearer(token))

        row = (user, scopes, team)
        if refusal is None:
            assert response.status_code == 201, (row, response.text)
            assert response.json()["deploy"]["deployed_by"] == f"token:reporter-{n}", row
            stored += 1
        else:
            error = error_of(response, 403, "access.forbidden")
            assert (error["message"], error["details"]) == (refusal, {"action": "deploy"}), row
        assert count_rows(sessions) == (stored, 1 if stored else 0), row


# ---------------------------------------------------------------- history and the feed


def test_history_is_newest_first_with_filters_and_paging(ci: TestClient) -> None:
    post(
        ci,
        [
            report("1.0.0", "staging", started=300, finished=290),
            report("1.0.0", "production", started=240, finished=230),
            report("1.1.0", "staging", started=180, finished=170, status="failed"),
            report("1.1.1", "staging", started=120, finished=110),
            report("1.1.1", "production", started=60, status="running"),
        ],
    )
    newest_first = [
        ("1.1.1", "production", "running"),
        ("1.1.1", "staging", "succeeded"),
        ("1.1.0", "staging", "failed"),
        ("1.0.0", "production", "succeeded"),
        ("1.0.0", "staging", "succeeded"),
    ]
    table: list[tuple[str, list[tuple[str, str, str]], int]] = [
        # everything, newest first
        ("", newest_first, 5),
        # one environment
        ("?environment=production", [newest_first[0], newest_first[3]], 2),
        # one status
        ("?status=succeeded", [newest_first[1], newest_first[3], newest_first[4]], 3),
        # both at once
        ("?environment=staging&status=failed", [newest_first[2]], 1),
        # started within a window: `since` counts, `until` does not
        (f"?since={ago(240)}&until={ago(120)}", [newest_first[2], newest_first[3]], 2),
        # the second page of two
        ("?per_page=2&page=2", newest_first[2:4], 5),
        # the last page, part full
        ("?per_page=2&page=3", newest_first[4:], 5),
        # past the end: no items, the total still counted
        ("?per_page=2&page=4", [], 5),
    ]

    for query, expected, total in table:
        page = history(ci, query)

        assert (versions_of(page), page["total"]) == (expected, total), query
    assert (history(ci, "?per_page=2&page=3")["page"], history(ci, "?per_page=2")["per_page"]) == (3, 2)


BAD_QUERIES: list[tuple[str, int, str]] = [
    # an environment nobody set up
    (f"/api/v1/services/{SERVICE}/deploys?environment=qa", 404, "deploys.unknown_environment"),
    # not a status
    (f"/api/v1/services/{SERVICE}/deploys?status=done", 422, "request.invalid"),
    # pages start at 1
    (f"/api/v1/services/{SERVICE}/deploys?page=0", 422, "request.invalid"),
    # at most 500 a page
    (f"/api/v1/services/{SERVICE}/deploys?per_page=501", 422, "request.invalid"),
    # not a time
    (f"/api/v1/services/{SERVICE}/deploys?since=yesterday", 422, "request.invalid"),
    # the history of a service nobody registered
    ("/api/v1/services/nope/deploys", 404, "catalog.service_not_found"),
    # ... its live versions
    ("/api/v1/services/nope/live", 404, "catalog.service_not_found"),
    # the feed of one
    ("/api/v1/deploys?service=nope", 404, "catalog.service_not_found"),
    # a deploy that does not exist
    ("/api/v1/deploys/4242", 404, "deploys.unknown_deploy"),
    # ... and what it changed
    ("/api/v1/deploys/4242/changes", 404, "deploys.unknown_deploy"),
    # an approval request that does not exist
    ("/api/v1/approvals/4242", 404, "approval.unknown"),
]


def test_bad_and_unknown_reads_are_refused(ci: TestClient) -> None:
    for url, status, code in BAD_QUERIES:
        response = ci.get(url)

        assert problem(response)[:2] == (status, code), url


def test_the_feed_spans_every_service(ci: TestClient, client: TestClient) -> None:
    create_service(client, "cart", TEAM, tier=2)
    post(
        ci,
        [
            report("1.0.0", "staging", started=300, finished=290),
            report("3.1.0", "production", service="cart", started=200, finished=190),
            report("1.1.0", "production", started=100, finished=90),
        ],
    )

    feed = client.get("/api/v1/deploys").json()

    assert [(d["service"], d["release"]["version"]) for d in feed["items"]] == [
        ("checkout", "1.1.0"),
        ("cart", "3.1.0"),
        ("checkout", "1.0.0"),
    ]
    assert (feed["total"], feed["page"], feed["per_page"]) == (3, 1, 50)
    only_cart = client.get("/api/v1/deploys?service=cart").json()
    assert [d["service"] for d in only_cart["items"]] == ["cart"]
    production = client.get("/api/v1/deploys?environment=production&per_page=1").json()
    assert ([d["release"]["version"] for d in production["items"]], production["total"]) == (["1.1.0"], 2)


# ---------------------------------------------------------------- live versions


def test_live_answers_every_environment(ci: TestClient) -> None:
    deployed = post(ci, report("1.0.0", "staging"))["deploy"]

    live = ci.get(f"/api/v1/services/{SERVICE}/live").json()

    assert live == {
        "service": "checkout",
        "environments": [
            {
                "environment": {"slug": "staging", "name": "Staging", "position": 1, "production": False},
                "deploy": deployed,
                "behind": None,
            },
            {
                "environment": {
                    "slug": "production",
                    "name": "Production",
                    "position": 2,
                    "production": True,
                },
                "deploy": None,
                "behind": None,
            },
        ],
        "registry": {
            "repository": None,
            "host": None,
            "latest": None,
            "images": [],
            "error": "the service names no image repository (field `image`)",
            "problem": "no_repository",
        },
    }


def test_a_rollback_makes_the_previous_success_live_again(ci: TestClient) -> None:
    post(ci, report("1.1.0", started=200, finished=190))
    # a late report of an older deploy does not replace what runs now
    post(ci, report("1.0.0", started=300, finished=290))
    assert live_versions(ci)["production"] == "1.1.0"

    rolled_back = post(ci, report("1.1.0", started=200, finished=100, status="rolled_back"), 200)

    assert (rolled_back["outcome"], rolled_back["deploy"]["status"]) == ("updated", "rolled_back")
    assert live_versions(ci) == {"staging": None, "production": "1.0.0"}
    # a failed deploy after it changes nothing either
    post(ci, report("1.2.0", started=60, finished=50, status="failed"))
    assert live_versions(ci)["production"] == "1.0.0"


# ---------------------------------------------------------------- what changed


def test_changes_list_the_releases_since_the_previous_live_version(
    ci: TestClient, clock: FrozenClock
) -> None:
    # each release first seen a minute after the one before, as CI reports them one by one
    first = post(ci, report("1.0.0", "staging"))["deploy"]
    production = post(ci, report("1.0.0", "production"))["deploy"]
    for version in ("1.1.0", "1.2.0"):
        clock.at += timedelta(minutes=1)
        post(ci, report(version, "staging", now=clock.at))
    clock.at += timedelta(minutes=1)
    latest = post(ci, report("1.2.0", "production", now=clock.at))["deploy"]

    changes = ci.get(f"/api/v1/deploys/{latest['id']}/changes").json()

    assert changes["previous"] == production
    assert [(r["version"], r["commit"]) for r in changes["releases"]] == [
        ("1.2.0", COMMITS["1.2.0"]),
        ("1.1.0", COMMITS["1.1.0"]),
    ]
    # the first deploy anywhere brought its own release, over nothing
    first_changes = ci.get(f"/api/v1/deploys/{first['id']}/changes").json()
    assert (first_changes["previous"], [r["version"] for r in first_changes["releases"]]) == (None, ["1.0.0"])
    # deploying the live version again brings nothing new
    clock.at += timedelta(minutes=1)
    again = post(ci, report("1.2.0", "production", id="again", now=clock.at))["deploy"]
    again_changes = ci.get(f"/api/v1/deploys/{again['id']}/changes").json()
    assert (again_changes["previous"]["id"], again_changes["releases"]) == (latest["id"], [])


# ---------------------------------------------------------------- the matrix and environments


def test_the_matrix_has_a_row_per_service_and_a_column_per_environment(
    ci: TestClient, client: TestClient
) -> None:
    create_team(client, "payments")
    create_service(client, "ledger", "payments", tier=2)
    create_service(client, "cart", TEAM, tier=3)
    post(ci, [report("1.0.0", "staging"), report("1.1.0", "staging", started=30, finished=20)])
    post(ci, report("2.0.0", "production", service="cart"))
    post(ci, report("1.0.0", "production"))

    matrix = client.get("/api/v1/matrix").json()

    assert [e["slug"] for e in matrix["environments"]] == ["staging", "production"]
    assert [
        (
            row["service"],
            row["owner"],
            row["tier"],
            {env: d and d["release"]["version"] for env, d in row["live"].items()},
        )
        for row in matrix["rows"]
    ] == [
        ("cart", "shop", 3, {"staging": None, "production": "2.0.0"}),
        ("checkout", "shop", 1, {"staging": "1.1.0", "production": "1.0.0"}),
        ("ledger", "payments", 2, {"staging": None, "production": None}),
    ]
    assert (matrix["total"], matrix["page"], matrix["per_page"]) == (3, 1, 100)
    owned = client.get("/api/v1/matrix?owner=payments").json()
    assert [row["service"] for row in owned["rows"]] == ["ledger"]
    paged = client.get("/api/v1/matrix?per_page=1&page=2").json()
    assert ([row["service"] for row in paged["rows"]], paged["total"]) == (["checkout"], 3)


def test_environments_are_listed_in_their_order_and_set_by_admins(ci: TestClient, client: TestClient) -> None:
    client.put("/api/v1/environments/dev", json={"name": "Dev", "position": 0})

    listed = ci.get("/api/v1/environments").json()

    assert [(e["slug"], e["position"], e["production"]) for e in listed] == [
        ("dev", 0, False),
        ("staging", 1, False),
        ("production", 2, True),
    ]
    refused = ci.put("/api/v1/environments/qa", json={"name": "QA"})
    assert error_of(refused, 403, "access.forbidden")["message"] == "this token lacks the 'admin' scope"


# ---------------------------------------------------------------- approvals


@pytest.fixture
def people(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[dict[str, TestClient]]:
    """Clients of two shop members, a shop viewer and a payments member, each with a deploy token."""
    shop(client, image=None)
    create_service(client, "cart", TEAM, tier=2)
    roles = {
        "alice": (GlobalRole.MEMBER, "shop"),
        "bob": (GlobalRole.MEMBER, "shop"),
        "vic": (GlobalRole.VIEWER, "shop"),
        "pat": (GlobalRole.MEMBER, "payments"),
    }
    with ExitStack() as stack:
        clients = {}
        for name, (role, team) in roles.items():
            email = f"{name}@example.com"
            make_user(sessions, clock, email, role=role, teams={team: "member"})
            token = make_token(sessions, clock, user=email, scopes=["deploy"], name=f"{name}-laptop")
            clients[name] = stack.enter_context(TestClient(app_under_test, headers=bearer(token)))
        yield clients


def ask(client: TestClient, service: str = SERVICE, environment: str = "production") -> Response:
    response: Response = client.post(
        "/api/v1/approvals",
        json={"service": service, "environment": environment, "version": "1.1.0", "summary": "Tax fix"},
    )
    return response


@pytest.mark.parametrize(
    ("service", "environment", "tier", "production", "status"),
    [
        # tier 1 to production: a second person must say yes
        ("checkout", "production", 1, True, "pending"),
        # tier 2 to production: no second person
        ("cart", "production", 2, True, "not_required"),
        # tier 1 to staging: no second person
        ("checkout", "staging", 1, False, "not_required"),
    ],
)
def test_a_request_waits_only_for_tier_1_production(
    people: dict[str, TestClient], service: str, environment: str, tier: int, production: bool, status: str
) -> None:
    response = ask(people["alice"], service, environment)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "action": "deploy",
        "resource_type": "service",
        "resource_key": service,
        "service": service,
        "team": "shop",
        "tier": tier,
        "environment": environment,
        "production": production,
        "version": "1.1.0",
        "summary": "Tax fix",
        "details": {"version": "1.1.0"},
        "status": status,
        "requested_by": "token:alice-laptop",
        "requested_at": "2026-11-25T12:00:00Z",
        "decided_by": None,
        "decided_at": None,
        "reason": None,
    }
    assert people["bob"].get(f"/api/v1/approvals/{body['id']}").json() == body
    decided = people["bob"].post(f"/api/v1/approvals/{body['id']}/approve")
    if status == "pending":
        assert decided.json()["status"] == "approved"
    else:
        assert error_of(decided, 409, "approval.not_pending")["details"] == {"status": "not_required"}


def test_a_second_person_of_the_team_decides_once(people: dict[str, TestClient], clock: FrozenClock) -> None:
    approval = ask(people["alice"]).json()
    url = f"/api/v1/approvals/{approval['id']}"
    refusals = [
        # the one who asked
        ("alice", "you asked for this change: a second person must approve it"),
        # someone of another team
        ("pat", "only members of team 'shop' may change the service 'checkout'"),
        # a viewer of the team
        ("vic", "viewers may only read"),
    ]
    for who, reason in refusals:
        assert error_of(people[who].post(f"{url}/approve"), 403, "access.forbidden")["message"] == reason
    clock.at += timedelta(minutes=3)

    approved = people["bob"].post(f"{url}/approve", json={"reason": "Looks right"})

    assert approved.status_code == 200, approved.text
    assert {k: approved.json()[k] for k in ("status", "decided_by", "decided_at", "reason")} == {
        "status": "approved",
        "decided_by": "token:bob-laptop",
        "decided_at": "2026-11-25T12:03:00Z",
        "reason": "Looks right",
    }
    twice = people["bob"].post(f"{url}/reject")
    assert error_of(twice, 409, "approval.not_pending")["details"] == {"status": "approved"}
    listed = people["alice"].get("/api/v1/approvals?status=approved").json()
    assert [(a["id"], a["status"]) for a in listed] == [(approval["id"], "approved")]
    assert people["alice"].get("/api/v1/approvals?status=pending").json() == []


def test_a_rejection_is_final(people: dict[str, TestClient]) -> None:
    url = f"/api/v1/approvals/{ask(people['alice']).json()['id']}"

    rejected = people["bob"].post(f"{url}/reject", json={"reason": "Not on a Friday"})

    assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "Not on a Friday")
    assert error_of(people["bob"].post(f"{url}/approve"), 409, "approval.not_pending")["details"] == {
        "status": "rejected"
    }


def test_who_may_not_ask(people: dict[str, TestClient]) -> None:
    table = [
        # a viewer, though in team shop
        ("vic", "production", 403, "access.forbidden", "viewers may only read"),
        # a member of another team
        (
            "pat",
            "production",
            403,
            "access.forbidden",
            "only members of team 'shop' may change the service 'checkout'",
        ),
        # a shop member, for an environment nobody set up
        (
            "alice",
            "qa",
            404,
            "deploys.unknown_environment",
            "no environment 'qa' (known: staging, production)",
        ),
    ]
    for who, environment, status, code, message in table:
        response = ask(people[who], environment=environment)

        assert error_of(response, status, code)["message"] == message
    assert people["alice"].get("/api/v1/approvals").json() == []
