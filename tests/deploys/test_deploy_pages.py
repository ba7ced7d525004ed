"""Deploy pages: a service's deploys tab, its HTMX history fragment, a deploy's detail, the environment
matrix, the recent deploys feed, and the approvals page; the tab with a registry that cannot be reached.

Pages are read with a bearer token (the reader dependency accepts one) and parsed with html.parser.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.errors import Invalid
from tests.conftest import make_token, make_user
from tests.deploys.helpers import (
    COMMITS,
    IMAGE,
    TEAM,
    Node,
    cells,
    parse_html,
    post,
    put_environments,
    report,
    reporter,
    shop,
)
from tests.helpers import Json, bearer, create_service
from tests.pg_cluster import free_port

LINK_TEMPLATES = {
    "Logs": "https://logs.example.com/search?q=service%3A{service}&from={from}&to={to}",
    "Dashboard": "https://grafana.example.com/d/svc?var-service={service}&var-env={env}&from={from_ms}&to={to_ms}",
}
REPO = "https://github.com/shop/checkout"
# The frozen clock's 12:00 and the hour before it, as the links spell them
FROM_11, TO_12 = "2026-11-25T11%3A00%3A00%2B00%3A00", "2026-11-25T12%3A00%3A00%2B00%3A00"
MS_11, MS_12 = "1795604400000", "1795608000000"


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[FastAPI]:
    """The portal with links into logs and dashboards configured."""
    portal = create_app(settings.model_copy(update={"link_templates": LINK_TEMPLATES}), clock=clock)
    yield portal
    portal.state.runtime.close()


@pytest.fixture
def admin(app: FastAPI, admin_token: str) -> Iterator[TestClient]:
    with TestClient(app, headers=bearer(admin_token)) as client:
        yield client


@pytest.fixture
def ci(
    app: FastAPI, admin: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[TestClient]:
    """Staging, production, team shop and its checkout service (with a repo link); CI's client."""
    shop(admin, image=None, links=[{"kind": "repo", "url": REPO}])
    with reporter(app, sessions, clock) as client:
        yield client


def page(client: TestClient, url: str, status: int = 200) -> Node:
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return parse_html(response.text)


def rows_of(table: Node) -> list[list[str]]:
    """The cells of each body row."""
    [body] = table.all("tbody")
    return [cells(row) for row in body.all("tr")]


def links_of(section: Node) -> list[tuple[str, str]]:
    return [(a.text(), a.attrs["href"]) for a in section.all("a", cls="log-link")]


# ---------------------------------------------------------------- the deploys tab


def test_the_deploys_tab_shows_live_versions_graphs_links_and_history(
    ci: TestClient, admin: TestClient
) -> None:
    admin.put("/api/v1/environments/dev", json={"name": "Dev", "position": 0})
    post(
        ci,
        [
            report("1.0.0", "production", started=100, finished=90),
            report("1.1.0", "staging"),
            report("1.1.0", "production", started=30, status="failed", finished=25),
        ],
    )

    doc = page(ci, "/services/checkout/deploys")

    assert rows_of(doc.by_id("live-versions")) == [
        ["Dev", "Never deployed here."],
        ["Staging", "1.1.0", f"{IMAGE}:1.1.0", "50 min ago", "token:ci-shop", "—"],
        ["Production production", "1.0.0", f"{IMAGE}:1.0.0", "1 h ago", "token:ci-shop", "—"],
    ]
    assert (
        doc.by_id("registry-message").text().startswith("This service names no image repository. Add `image:")
    )
    # Prometheus is not configured here: one explanation instead of the graphs (test_calm_pages.py)
    graphs = doc.by_id("graphs")
    assert "data-graphs" not in graphs.attrs
    assert graphs.by_id("graphs-empty").text().startswith("Connect Prometheus to see graphs here.")
    # the last hour; `env` is empty on the service's own tab
    assert links_of(graphs) == [
        ("Logs", f"https://logs.example.com/search?q=service%3Acheckout&from={FROM_11}&to={TO_12}"),
        (
            "Dashboard",
            f"https://grafana.example.com/d/svc?var-service=checkout&var-env=&from={MS_11}&to={MS_12}",
        ),
    ]
    history = doc.by_id("history")
    assert history.all("p")[0].text() == "3 deploys"
    # version, environment, status (and flags), commit, by, started, duration
    assert rows_of(doc.by_id("deploy-history")) == [
        [
            "1.1.0",
            "production",
            "failed unapproved",
            "2222222bbb",
            "token:ci-shop (ci)",
            "30 min ago",
            "5 min",
        ],
        ["1.1.0", "staging", "succeeded", "2222222bbb", "token:ci-shop (ci)", "1 h ago", "10 min"],
        [
            "1.0.0",
            "production",
            "succeeded unapproved",
            "1111111aaa",
            "token:ci-shop (ci)",
            "1 h ago",
            "10 min",
        ],
    ]
    # the commits link to the service's repository
    assert [a.attrs["href"] for a in doc.by_id("deploy-history").all("a", cls="sha")] == [
        f"{REPO}/commit/{COMMITS['1.1.0']}",
        f"{REPO}/commit/{COMMITS['1.1.0']}",
        f"{REPO}/commit/{COMMITS['1.0.0']}",
    ]


def test_link_templates_encode_the_service_name(admin: TestClient) -> None:
    """A namespaced service's slash cannot change the link's shape."""
    put_environments(admin)
    admin.post("/api/v1/teams", json={"slug": "shop", "name": "Shop"})
    create_service(admin, "web/checkout", TEAM, tier=1)

    doc = page(admin, "/services/web/checkout/deploys")

    assert [href for _, href in links_of(doc.by_id("graphs"))] == [
        f"https://logs.example.com/search?q=service%3Aweb%2Fcheckout&from={FROM_11}&to={TO_12}",
        f"https://grafana.example.com/d/svc?var-service=web%2Fcheckout&var-env=&from={MS_11}&to={MS_12}",
    ]


def test_htmx_gets_only_the_history_filtered(ci: TestClient) -> None:
    post(
        ci,
        [
            report("1.0.0", "staging", started=100, finished=90),
            report("1.0.0", "production", started=90, finished=80),
            report("1.1.0", "production"),
        ],
    )

    response = ci.get(
        "/services/checkout/deploys?environment=production&status=", headers={"HX-Request": "true"}
    )

    assert response.status_code == 200, response.text
    assert response.text.lstrip().startswith('<div id="history">')
    assert "<html" not in response.text
    doc = parse_html(response.text)
    assert [n.attrs.get("id") for n in doc.children if isinstance(n, Node)] == ["history"]
    assert (doc.find("live"), doc.find("graphs")) == (None, None)
    assert doc.by_id("history").all("p")[0].text() == "2 deploys"
    assert [row[:3] for row in rows_of(doc.by_id("deploy-history"))] == [
        ["1.1.0", "production", "succeeded unapproved"],
        ["1.0.0", "production", "succeeded unapproved"],
    ]
    # the full page keeps the filter chosen
    full = page(ci, "/services/checkout/deploys?environment=production")
    [chosen] = [o for o in full.all("option") if "selected" in o.attrs]
    assert (chosen.attrs["value"], len(rows_of(full.by_id("deploy-history")))) == ("production", 2)


def test_the_deploys_tab_of_an_unknown_service_is_a_404_page(ci: TestClient) -> None:
    doc = page(ci, "/services/nope/deploys", 404)

    assert "service 'nope' is not in the catalog" in doc.text()


# ---------------------------------------------------------------- a deploy's detail


def test_a_deploy_page_shows_what_changed_with_a_compare_link(ci: TestClient, clock: FrozenClock) -> None:
    first = post(ci, report("1.0.0", "production", started=60, finished=50))["deploy"]
    clock.at += timedelta(minutes=1)
    post(ci, report("1.1.0", "staging", now=clock.at, notes="Tax fix"))
    clock.at += timedelta(minutes=1)
    latest = post(ci, report("1.1.0", "production", started=20, finished=10, now=clock.at))["deploy"]

    doc = page(ci, latest["url"])

    changes = doc.by_id("changes")
    assert changes.all("p")[0].text() == (
        "Before this, 1.0.0 was live in production (deployed 52 min ago). Compare the commits."
    )
    assert (
        doc.by_id("compare-link").attrs["href"] == f"{REPO}/compare/{COMMITS['1.0.0']}...{COMMITS['1.1.0']}"
    )
    assert [li.text() for li in doc.by_id("changed-releases").all("li")] == ["1.1.0 2222222bbb — Tax fix"]
    # started 11:42, finished 11:52: the links span from 15 minutes before to 30 after
    assert links_of(doc) == [
        (
            "Logs",
            "https://logs.example.com/search?q=service%3Acheckout"
            "&from=2026-11-25T11%3A27%3A00%2B00%3A00&to=2026-11-25T12%3A22%3A00%2B00%3A00",
        ),
        (
            "Dashboard",
            "https://grafana.example.com/d/svc?var-service=checkout&var-env=production"
            "&from=1795606020000&to=1795609320000",
        ),
    ]
    # the first deploy to production had nothing before it, so nothing to compare
    first_doc = page(ci, first["url"])
    assert (
        first_doc.by_id("changes").all("p")[0].text() == "Nothing was live in production before this deploy."
    )
    assert first_doc.find("compare-link") is None


def test_a_deploy_page_shows_its_timeline(ci: TestClient, clock: FrozenClock) -> None:
    started = post(ci, report("1.0.0", status="running", id="run-9"))["deploy"]
    clock.at += timedelta(minutes=5)
    post(ci, report("1.0.0", status="succeeded", id="run-9", finished=1), 200)

    doc = page(ci, started["url"])

    steps = doc.by_id("timeline").all("li")
    assert [(li.attrs["data-to"], li.text()) for li in steps] == [
        ("running", "5 min ago recorded as running by token:ci-shop: reported by ci"),
        ("succeeded", "just now running → succeeded by token:ci-shop: reported by ci"),
    ]


def test_a_gitlab_repo_gets_gitlab_s_compare_link(ci: TestClient, admin: TestClient) -> None:
    links = [{"kind": "source", "url": "https://gitlab.example.com/shop/cart.git"}]
    create_service(admin, "cart", TEAM, tier=1, links=links)
    post(ci, report("1.0.0", service="cart", started=60, finished=50))
    latest = post(ci, report("1.1.0", service="cart", started=20, finished=10))["deploy"]

    doc = page(ci, latest["url"])

    assert doc.by_id("compare-link").attrs["href"] == (
        f"https://gitlab.example.com/shop/cart/-/compare/{COMMITS['1.0.0']}...{COMMITS['1.1.0']}"
    )


def test_an_unknown_deploy_is_a_404_page(ci: TestClient) -> None:
    assert "no deploy 4242" in page(ci, "/deploys/4242", 404).text()


# ---------------------------------------------------------------- the matrix and the feed


def test_the_matrix_page_puts_each_version_in_its_cell(ci: TestClient, admin: TestClient) -> None:
    create_service(admin, "cart", TEAM, tier=2)
    post(ci, [report("1.0.0", "production"), report("2.0.0", "staging", service="cart")])

    doc = page(ci, "/environments")

    matrix = doc.by_id("matrix")
    assert cells(matrix.all("thead")[0].all("tr")[0]) == ["Service", "Owner", "Staging", "Production"]
    by_cell = {
        (row.attrs["data-service"], cell.attrs["data-environment"]): cell.text()
        for row in matrix.all("tr")
        if "data-service" in row.attrs
        for cell in row.all("td")
        if "data-environment" in cell.attrs
    }
    assert by_cell == {
        ("cart", "staging"): "2.0.0 50 min ago",
        ("cart", "production"): "—",
        ("checkout", "staging"): "—",
        ("checkout", "production"): "1.0.0 50 min ago",
    }
    [link] = [a for a in matrix.all("a") if a.text() == "1.0.0"]
    assert link.attrs["href"].startswith("/deploys/")
    nothing = page(ci, "/environments?q=zzz&owner=")
    assert rows_of(nothing.by_id("matrix")) == [
        ["No services match. Clear the filters, or check the owner team's slug."]
    ]


def test_the_feed_page_lists_deploys_of_every_service(ci: TestClient, admin: TestClient) -> None:
    create_service(admin, "cart", TEAM, tier=2)
    post(
        ci,
        [report("1.0.0", "production", started=90, finished=80), report("2.0.0", "staging", service="cart")],
    )

    doc = page(ci, "/deploys")

    assert [row[:4] for row in rows_of(doc.by_id("feed"))] == [
        ["cart", "2.0.0", "staging", "succeeded"],
        ["checkout", "1.0.0", "production", "succeeded unapproved"],
    ]
    only_cart = page(ci, "/deploys?service=cart&environment=&status=")
    assert [row[0] for row in rows_of(only_cart.by_id("feed"))] == ["cart"]
    nothing = page(ci, "/deploys?status=failed")
    assert rows_of(nothing.by_id("feed")) == [
        ["No deploys match these filters. Widen them, or clear them to see every deploy."]
    ]


# ---------------------------------------------------------------- approvals


def test_only_someone_who_may_decide_sees_the_approve_button(
    app: FastAPI,
    ci: TestClient,
    admin: TestClient,
    admin_token: str,
    sessions: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    create_service(admin, "cart", TEAM, tier=2)
    tokens = {"admin": admin_token}
    for name, role in (("alice", GlobalRole.MEMBER), ("bob", GlobalRole.MEMBER), ("vic", GlobalRole.VIEWER)):
        make_user(sessions, clock, f"{name}@example.com", role=role, teams={"shop": "member"})
        tokens[name] = make_token(sessions, clock, user=f"{name}@example.com", scopes=["deploy"], name=name)
    ask: Json = {"service": "checkout", "environment": "production", "version": "1.1.0"}
    asked = admin.post("/api/v1/approvals", json=ask, headers=bearer(tokens["alice"]))
    assert asked.status_code == 201, asked.text
    approval_id = asked.json()["id"]
    free = admin.post("/api/v1/approvals", json={**ask, "service": "cart"}, headers=bearer(tokens["alice"]))
    assert free.json()["status"] == "not_required"

    expected = [
        # the one who asked
        ("alice", False),
        # a viewer of the team
        ("vic", False),
        # a second member of the team
        ("bob", True),
        # an admin who did not ask
        ("admin", True),
    ]
    for who, decides in expected:
        with TestClient(app, headers=bearer(tokens[who])) as someone:
            doc = page(someone, "/approvals")

        [row] = [r for r in doc.by_id("approvals").all("tr") if "data-approval-id" in r.attrs]
        assert cells(row)[1:5] == ["checkout", "production", "1.1.0", "token:alice"], who
        forms = [f.attrs["action"] for f in row.all("form")]
        buttons = [b.text() for b in row.all("button")]
        if decides:
            assert forms == [f"/approvals/{approval_id}/approve", f"/approvals/{approval_id}/reject"], who
            assert buttons == ["Approve", "Reject"], who
        else:
            assert (forms, buttons) == ([], []), who
    with TestClient(app, headers=bearer(tokens["bob"]), follow_redirects=False) as bob:
        # requests that need nobody wait on nobody: listed, without buttons
        done = page(bob, "/approvals?status=not_required")
        [row] = [r for r in done.by_id("approvals").all("tr") if "data-approval-id" in r.attrs]
        assert (cells(row)[1], row.all("button")) == ("cart", [])

        # the Approve button's form does approve, once
        approved = bob.post(f"/approvals/{approval_id}/approve", data={"reason": "ok"})

        assert (approved.status_code, approved.headers["location"]) == (303, "/approvals")
        decided = bob.get(f"/api/v1/approvals/{approval_id}").json()
        assert (decided["status"], decided["decided_by"], decided["reason"]) == (
            "approved",
            "token:bob",
            "ok",
        )
        again = bob.post(f"/approvals/{approval_id}/reject")
        assert again.status_code == 409
        assert (
            f"approval request {approval_id} is approved: nothing to decide" in parse_html(again.text).text()
        )


# ---------------------------------------------------------------- the registry down


def test_the_deploys_tab_answers_when_the_registry_is_down(
    settings: Settings, clock: FrozenClock, admin_token: str, sessions: sessionmaker[Session]
) -> None:
    port = free_port()  # nothing listens there
    registry = f"127.0.0.1:{port}"
    app = create_app(settings.model_copy(update={"registry_plain_http": registry}), clock=clock)
    with TestClient(app, headers=bearer(admin_token)) as admin:
        shop(admin, image=f"{registry}/shop/checkout")
        with reporter(app, sessions, clock) as ci:
            post(ci, report("1.0.0", "production", image=f"{registry}/shop/checkout:1.0.0"))

        doc = page(admin, "/services/checkout/deploys")

        message = doc.by_id("registry-message").text()
        assert message == (
            f"The registry {registry} is not reachable from here: "
            "nothing accepts connections at that address (connection refused)."
        )
        assert doc.find("registry-latest") is None
        # what runs is still shown, only how far behind it is cannot be told
        [production] = [
            r for r in doc.by_id("live-versions").all("tr") if r.attrs.get("data-environment") == "production"
        ]
        assert (cells(production)[1], cells(production)[-1]) == ("1.0.0", "—")
        live = admin.get("/api/v1/services/checkout/live").json()
        assert (live["registry"]["error"], live["registry"]["latest"]) == (message, None)
    app.state.runtime.close()


# ---------------------------------------------------------------- a team's own graphs


def test_a_team_adds_and_removes_a_graph_from_the_deploys_tab(
    app: FastAPI, ci: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "alice@example.com", teams={"shop": "member"})
    make_user(sessions, clock, "pat@example.com", teams={"payments": "member"})
    alice_token = make_token(
        sessions, clock, user="alice@example.com", scopes=["write:catalog"], name="alice"
    )
    pat_token = make_token(sessions, clock, user="pat@example.com", scopes=["write:catalog"], name="pat")
    form = {
        "key": "failures",
        "title": "Failures",
        "query": 'sum(rate(http_requests_total{service="{{service}}"}[{{range}}]))',
    }
    with (
        TestClient(app, headers=bearer(alice_token), follow_redirects=False) as alice,
        TestClient(app, headers=bearer(pat_token), follow_redirects=False) as pat,
    ):
        # only the owning team is offered the form
        assert page(alice, "/services/checkout/deploys").find("add-panel") is not None
        assert page(pat, "/services/checkout/deploys").find("add-panel") is None

        added = alice.post("/services/checkout/panels", data=form)

        assert (added.status_code, added.headers["location"]) == (303, "/services/checkout/deploys#graphs")
        graphs = page(alice, "/services/checkout/deploys").by_id("graphs")
        assert "This team's own graphs: failures remove" in graphs.text()
        assert [f.attrs["action"] for f in graphs.all("form")] == [
            "/services/checkout/panels/failures/delete",
            "/services/checkout/panels",
        ]
        refusals = [
            # another team's member
            (pat, form | {"key": "theirs"}, 403),
            # a key that is not a slug
            (alice, form | {"key": "Bad Key"}, 422),
            # a placeholder the portal does not fill
            (alice, form | {"key": "by-team", "query": 'up{team="{{team}}"}'}, 422),
        ]
        for who, data, status in refusals:
            assert who.post("/services/checkout/panels", data=data).status_code == status, data
        assert pat.post("/services/checkout/panels/failures/delete").status_code == 403

        removed = alice.post("/services/checkout/panels/failures/delete")

        assert (removed.status_code, removed.headers["location"]) == (
            303,
            "/services/checkout/deploys#graphs",
        )
        assert "own graphs" not in page(alice, "/services/checkout/deploys").by_id("graphs").text()


BAD_LINK_TEMPLATES: list[tuple[str, str]] = [
    # a placeholder links do not fill
    ("https://logs.example.com/?team={team}", "names team; known: env, from, from_ms, service, to, to_ms"),
    # an unclosed brace
    ("https://logs.example.com/?q={service", "is malformed"),
    # not a web link
    ("javascript:alert({service})", "must be an http(s) URL"),
]


def test_a_bad_link_template_stops_the_portal_from_starting(tmp_path: Path) -> None:
    for template, says in BAD_LINK_TEMPLATES:
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'qd.db'}", link_templates={"Logs": template})

        with pytest.raises(Invalid) as raised:
            create_app(settings)

        assert raised.value.code == "observability.bad_link", template
        assert raised.value.message.startswith("link template 'Logs' "), template
        assert says in raised.value.message, template
