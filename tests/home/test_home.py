"""The home at / and stars, on SQLite and PostgreSQL: a member of a team sees its services with what runs
where and how they are doing, the change requests waiting for them, recent deploys and ingestion
problems, and their stars; starring through the pages and the API is idempotent, capped, race-safe
and personal; an anonymous reader and a user in no team get the overview and a next step."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.home import queries, stars
from tests.conftest import NOW, make_token, make_user, session_client
from tests.deploys.helpers import Node, cells, parse_html, post, put_environments, report, reporter
from tests.helpers import bearer, create_service, create_team, error_of, posted

MIA = "mia@shop.example"
"""A member of team shop through the catalog: her person entry, found by e-mail, is in the team."""
ALICE = "alice@shop.example"
"""Another member of team shop (a role an admin granted), who asks to ship checkout 1.1.0."""


@pytest.fixture
def shop(
    client: TestClient, app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[TestClient]:
    """Staging and production; team shop with checkout (tier 1) and cart (tier 2, depending on a
    misspelt `paymnets`), team finance with ledger; deploys of all three; alice's request to ship
    checkout 1.1.0 to production, two hours old. Yields a client signed in as mia (a browser session)."""
    put_environments(client)
    create_team(client, "shop")
    create_team(client, "finance")
    posted(client, "/api/v1/people", {"email": MIA, "name": "Mia Shop", "handle": "mia", "teams": ["shop"]})
    create_service(client, "checkout", "shop", tier=1, title="Checkout")
    create_service(client, "cart", "shop", tier=2, title="Cart", depends_on=["paymnets"])
    create_service(client, "ledger", "finance", tier=1, title="Ledger")
    with reporter(app_under_test, sessions, clock) as ci:
        post(ci, report("1.0.0", "production", started=120, finished=112))
        post(ci, report("1.1.0", "production", started=30, finished=25, status="failed"))
        post(ci, report("2.0.0", "staging", service="cart", started=20, finished=19))
    with reporter(app_under_test, sessions, clock, name="ci-finance", team="finance") as ci:
        post(ci, report("9.0.0", "production", service="ledger", started=10, finished=9))
    make_user(sessions, clock, MIA)
    make_user(sessions, clock, ALICE, teams={"shop": "member"})
    clock.at = NOW - timedelta(hours=2)
    try:
        alice = session_client(app_under_test, sessions, clock, ALICE)
        ask = {"service": "checkout", "environment": "production", "version": "1.1.0", "summary": "Tax fix"}
        asked = alice.post("/api/v1/approvals", json=ask)
        assert (asked.status_code, asked.json()["status"]) == (201, "pending"), asked.text
    finally:
        clock.at = NOW
    yield session_client(app_under_test, sessions, clock, MIA)


def page(client: TestClient, path: str = "/") -> Node:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    return parse_html(response.text)


def body_rows(table: Node) -> list[Node]:
    return [row for row in table.all("tr") if row.all("td")]


# ---------------------------------------------------------------- the home of a member


def test_a_member_sees_their_services_with_live_versions_and_health(shop: TestClient) -> None:
    doc = page(shop)

    assert doc.by_id("home-title").text() == "Your home"
    assert "team Shop" in doc.by_id("home-teams").text()
    rows = body_rows(doc.by_id("my-services"))
    assert [row.attrs["data-service"] for row in rows] == ["checkout", "cart"]  # the most critical first
    checkout, cart = ({cell.attrs.get("data-environment"): cell for cell in row.all("td")} for row in rows)
    assert checkout["production"].all("a", cls="live-version")[0].text() == "1.0.0"
    assert checkout["production"].all("div", cls="latest")[0].text() == "failed 1.1.0"
    assert checkout["staging"].text() == "—"
    assert cart["staging"].all("a", cls="live-version")[0].text() == "2.0.0"
    health = {row.attrs["data-service"]: row.all("td", cls="health")[0].all("span")[0] for row in rows}
    assert {slug: badge.attrs["data-status"] for slug, badge in health.items()} == {
        "checkout": "failing",
        "cart": "problems",
    }
    assert health["cart"].attrs["class"] == "badge status status-warn"
    assert "ledger" not in doc.by_id("main").text().lower()  # finance's, not mia's


def test_a_member_sees_the_approval_waiting_for_them_with_who_asked_and_since_when(shop: TestClient) -> None:
    doc = page(shop)

    [row] = body_rows(doc.by_id("waiting"))
    assert cells(row)[:4] == ["checkout 1.1.0 Tax fix", "2 h ago", ALICE, "production"]
    [asked] = row.all("time")
    assert asked.attrs["title"] == "2026-11-25 10:00:00 UTC"


def test_the_one_who_asked_is_not_asked_to_decide(
    shop: TestClient, app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    alice = session_client(app_under_test, sessions, clock, ALICE)

    doc = page(alice)

    assert doc.find("nothing-waiting") is not None
    assert body_rows(doc.by_id("my-services"))  # her team's services, though


def test_a_member_sees_recent_deploys_of_what_they_own_with_times_and_durations(shop: TestClient) -> None:
    rows = body_rows(page(shop).by_id("recent-deploys"))

    assert [cells(row) for row in rows] == [
        ["cart", "succeeded", "2.0.0", "staging", "20 min ago", "1 min"],
        ["checkout", "failed", "1.1.0", "production", "30 min ago", "5 min"],
        ["checkout", "succeeded", "1.0.0", "production", "2 h ago", "8 min"],
    ]


def test_a_member_sees_the_dangling_reference_of_a_service_they_own(shop: TestClient) -> None:
    [problem] = page(shop).by_id("problems").all("li")

    assert (problem.attrs["data-service"], problem.attrs["data-kind"]) == ("cart", "reference")
    assert problem.text() == "Cart: dependency 'paymnets' is not in the catalog"


# ---------------------------------------------------------------- stars through the pages


def test_starring_from_a_service_page_puts_it_on_the_home_and_unstarring_takes_it_off(
    shop: TestClient,
) -> None:
    [before] = page(shop, "/services/ledger").all("button", cls="star-button")
    assert (before.attrs["aria-pressed"], before.attrs["aria-label"]) == ("false", "Star Ledger")
    [form] = page(shop, "/services/ledger").all("form", cls="star-form")
    fields = {field.attrs["name"]: field.attrs["value"] for field in form.all("input")}
    assert form.attrs["action"] == "/stars/service/ledger"
    assert fields["starred"] == "true" and fields["next"] == "/services/ledger" and fields["csrf_token"]

    press = {"starred": "true", "next": "/services/ledger"}
    pressed = shop.post("/stars/service/ledger", data=press, follow_redirects=False)
    again = shop.post("/stars/service/ledger", data=press, follow_redirects=False)

    assert (pressed.status_code, pressed.headers["location"]) == (303, "/services/ledger")
    assert again.status_code == 303  # a double submit stars once
    [after] = page(shop, "/services/ledger").all("button", cls="star-button")
    assert after.attrs["aria-pressed"] == "true"
    [starred] = page(shop).by_id("stars").all("li")
    assert starred.attrs["data-star"] == "service:ledger"
    assert starred.all("a")[0].attrs["href"] == "/services/ledger"

    fragment = shop.post(
        "/stars/service/ledger", data={"starred": "false", "next": "/"}, headers={"HX-Request": "true"}
    )

    assert fragment.status_code == 200 and "<html" not in fragment.text
    [button] = parse_html(fragment.text).all("button")
    assert button.attrs["aria-pressed"] == "false"
    assert page(shop).find("no-stars") is not None


def test_the_star_form_is_refused_without_its_csrf_token(shop: TestClient) -> None:
    del shop.headers["X-CSRF-Token"]

    refused = shop.post("/stars/service/ledger", data={"starred": "true"})

    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("path", "kind", "slug"),
    [
        ("/teams/finance", "team", "finance"),
        ("/people/mia@shop.example", "person", "mia"),
        ("/systems/till", "system", "till"),
    ],
)
def test_team_person_and_system_pages_have_a_star_button(
    shop: TestClient, client: TestClient, path: str, kind: str, slug: str
) -> None:
    posted(client, "/api/v1/systems", {"slug": "till", "title": "Till", "owner": "shop"})

    [form] = page(shop, path).all("form", cls="star-form")

    assert form.attrs["action"] == f"/stars/{kind}/{slug}"
    pressed = shop.post(form.attrs["action"], data={"starred": "true"}, follow_redirects=False)
    assert (pressed.status_code, pressed.headers["location"]) == (
        303,
        path.replace("mia@shop.example", "mia"),
    )
    assert [b.attrs["aria-pressed"] for b in page(shop, path).all("button", cls="star-button")] == ["true"]


# ---------------------------------------------------------------- stars through the API


def test_put_and_delete_are_idempotent(shop: TestClient) -> None:
    first = shop.put("/api/v1/me/stars/team/shop")
    second = shop.put("/api/v1/me/stars/team/shop")

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert first.json() | {"starred_at": None} == {
        "kind": "team",
        "slug": "shop",
        "name": "Shop",
        "url": "/teams/shop",
        "exists": True,
        "starred_at": None,
    }
    assert shop.get("/api/v1/me/stars/team/shop").status_code == 200
    assert shop.delete("/api/v1/me/stars/team/shop").status_code == 204
    assert shop.delete("/api/v1/me/stars/team/shop").status_code == 204
    error_of(shop.get("/api/v1/me/stars/team/shop"), 404, "home.not_starred")


def test_a_person_is_starred_under_their_handle_whichever_way_they_are_named(shop: TestClient) -> None:
    starred = shop.put("/api/v1/me/stars/person/MIA@shop.example")

    assert (starred.status_code, starred.json()["slug"], starred.json()["url"]) == (201, "mia", "/people/mia")
    assert shop.put("/api/v1/me/stars/person/mia").status_code == 200
    listed = shop.get("/api/v1/me/stars").json()
    assert [(item["kind"], item["slug"]) for item in listed["items"]] == [("person", "mia")]
    assert shop.delete("/api/v1/me/stars/person/mia@shop.example").status_code == 204
    assert shop.get("/api/v1/me/stars").json()["total"] == 0


def test_an_unknown_entity_is_a_404_naming_the_nearest(shop: TestClient) -> None:
    error = error_of(shop.put("/api/v1/me/stars/service/chekout"), 404, "home.unknown_entity")

    assert error["message"] == "service 'chekout' is not in the catalog; did you mean 'checkout'?"
    assert error["details"]["suggestions"] == ["checkout"]
    error_of(shop.delete("/api/v1/me/stars/team/shopp"), 404, "home.unknown_entity")
    assert shop.put("/api/v1/me/stars/galaxy/checkout").status_code == 422
    assert shop.get("/api/v1/me/stars").json()["items"] == []


def test_the_number_of_stars_is_capped(
    shop: TestClient, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stars, "STAR_LIMIT", 2)
    assert shop.put("/api/v1/me/stars/service/checkout").status_code == 201
    assert shop.put("/api/v1/me/stars/service/cart").status_code == 201

    error = error_of(shop.put("/api/v1/me/stars/service/ledger"), 409, "home.too_many_stars")

    assert error["message"].startswith("you have starred 2 entities, the most one person may")
    assert error["details"] == {"limit": 2}
    assert shop.put("/api/v1/me/stars/service/cart").status_code == 200  # what is starred stays so
    assert shop.get("/api/v1/me/stars").json() | {"items": None} == {"items": None, "total": 2, "limit": 2}


def test_two_racing_puts_of_one_star_give_one_star_and_no_error(
    shop: TestClient, sessions: sessionmaker[Session]
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: shop.put("/api/v1/me/stars/service/checkout"), range(2)))

    assert sorted(answer.status_code for answer in answers) == [200, 201], [a.text for a in answers]
    assert shop.get("/api/v1/me/stars").json()["total"] == 1


def test_the_guarded_insert_adds_a_star_once_on_each_database(
    shop: TestClient, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        user_id = session.execute(text("SELECT id FROM users WHERE email = :e"), {"e": MIA}).scalar_one()
        first = queries.insert_star(session, user_id, "service", "checkout", at=NOW)
        second = queries.insert_star(session, user_id, "service", "checkout", at=NOW + timedelta(minutes=1))
        assert (first, second) == (True, False)
        assert queries.count_of(session, user_id) == 1


def test_another_users_stars_are_not_shown(
    shop: TestClient, app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    alice = session_client(app_under_test, sessions, clock, ALICE)
    assert alice.put("/api/v1/me/stars/service/ledger").status_code == 201

    assert shop.get("/api/v1/me/stars").json()["items"] == []
    assert page(shop).find("no-stars") is not None
    assert [
        b.attrs["aria-pressed"] for b in page(shop, "/services/ledger").all("button", cls="star-button")
    ] == ["false"]
    assert [li.attrs["data-star"] for li in page(alice).by_id("stars").all("li")] == ["service:ledger"]


def test_stars_need_a_person(
    shop: TestClient,
    app_under_test: FastAPI,
    anon_client: TestClient,
    sessions: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    service_token = make_token(sessions, clock, user=None, scopes=["read"])

    with TestClient(app_under_test, headers=bearer(service_token)) as ci:
        error_of(ci.put("/api/v1/me/stars/service/checkout"), 403, "home.no_person")
    error_of(anon_client.put("/api/v1/me/stars/service/checkout"), 401, "access.sign_in_required")


# ---------------------------------------------------------------- nobody's home


def test_a_user_in_no_team_gets_the_overview_and_what_to_do_next(
    shop: TestClient, app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "newcomer@example.com")
    newcomer = session_client(app_under_test, sessions, clock, "newcomer@example.com")

    doc = page(newcomer)

    empty = doc.by_id("no-team")
    assert empty.text() == (
        "You are not in any team yet Ask an admin to add you to your team, or star services to see them here."
    )
    assert doc.find("my-services") is None and doc.find("home-search") is not None
    assert "3 services" in " ".join(stat.text() for stat in doc.all("a", cls="stat"))
    assert doc.find("no-stars") is not None


def test_an_anonymous_reader_gets_the_search_and_the_overview(
    settings: Settings, clock: FrozenClock, shop: TestClient
) -> None:
    app = create_app(settings.model_copy(update={"anonymous_read": True}), clock=clock)
    try:
        with TestClient(app) as anonymous:
            doc = page(anonymous)
            service_page = page(anonymous, "/services/checkout")
    finally:
        app.state.runtime.close()

    assert doc.by_id("home-title").text() == "Who owns it, and how do I reach them?"
    assert doc.find("home-search") is not None and doc.find("sign-in-hint") is not None
    assert [stat.text() for stat in doc.all("a", cls="stat")] == [
        "3 services",
        "2 teams",
        "1 people",
        "0 systems",
    ]
    assert doc.find("waiting") is None and doc.find("stars") is None
    assert service_page.all("form", cls="star-form") == []  # nobody to star for
