"""Pipelines kept in the portal: which one a deploy gets and why (each level of precedence over the next),
versions (unchanged, new, history, stale and racing applies), rights (team owners, admins for defaults and
for removing a tier-1 production approval), the audit log, the API, the page and the exact version a deploy
records. Runs on SQLite and PostgreSQL; the races on PostgreSQL only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import audit
from quarterdeck.access.schemas import Actor
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.deploys.pipelines import service, store
from quarterdeck.deploys.pipelines.loading import DEFAULTS_FILE, read_pipeline_text
from quarterdeck.errors import Conflict
from quarterdeck.runtime import Runtime
from tests.conftest import ROOT, make_token, make_user
from tests.deploys.helpers import parse_html, put_environments
from tests.helpers import Json, bearer, create_service, create_team, error_of, wait_until

SYSTEM = Actor.system("tests")
GUARDED = """\
name: {name}
applies_to: {applies_to}
steps:
  - approval: {{who: {{team_role: member}}, two_person: true}}
  - deploy: {{weight: {first}}}
  - deploy: {{weight: 100}}
"""
UNGUARDED = """\
name: {name}
steps:
  - deploy: {{weight: {first}}}
  - deploy: {{weight: 100}}
"""


def guarded(name: str, first: int = 5, applies_to: str = "{}") -> str:
    """A pipeline that keeps the tier-1 production approval (a second member of the team, before traffic)."""
    return GUARDED.format(name=name, first=first, applies_to=applies_to)


def unguarded(name: str, first: int = 5) -> str:
    """A pipeline without any approval."""
    return UNGUARDED.format(name=name, first=first)


@dataclass
class Org:
    """Staging and production; team shop (owner alice, member bob) with tier-1 checkout and tier-3 cart;
    team payments (owner carol) with tier-2 ledger; `admin` is an admin."""

    admin: TestClient
    alice: TestClient
    bob: TestClient
    carol: TestClient
    sessions: sessionmaker[Session]


@pytest.fixture
def org(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> Iterator[Org]:
    put_environments(client)
    create_team(client, "shop")
    create_team(client, "payments")
    create_team(client, "sre")
    create_service(client, "checkout", "shop", tier=1)
    create_service(client, "cart", "shop", tier=3)
    create_service(client, "ledger", "payments", tier=2)
    roles = {"alice": ("shop", "owner"), "bob": ("shop", "member"), "carol": ("payments", "owner")}
    with ExitStack() as stack:
        people = {}
        for name, (team, role) in roles.items():
            email = f"{name}@example.com"
            make_user(sessions, clock, email, teams={team: role})
            token = make_token(sessions, clock, user=email, scopes=["deploy"], name=name)
            people[name] = stack.enter_context(TestClient(app_under_test, headers=bearer(token)))
        yield Org(client, people["alice"], people["bob"], people["carol"], sessions)


def put(
    client: TestClient,
    scope: str,
    ref: str,
    body: str,
    *,
    environment: str | None = None,
    base_version: int | None = None,
) -> httpx.Response:
    """PUT a pipeline as YAML, the way `curl --data-binary @pipeline.yaml` does."""
    params: dict[str, str | int] = {}
    if environment is not None:
        params["environment"] = environment
    if base_version is not None:
        params["base_version"] = base_version
    response: httpx.Response = client.put(
        f"/api/v1/pipelines/{scope}/{ref}",
        content=body.encode(),
        params=params,
        headers={"Content-Type": "application/yaml"},
    )
    return response


def applied(client: TestClient, scope: str, ref: str, body: str, status: int = 201, **kw: Any) -> Json:
    response = put(client, scope, ref, body, **kw)
    assert response.status_code == status, response.text
    answer: Json = response.json()
    return answer


def chosen(client: TestClient, service_: str = "checkout", environment: str = "production") -> Json:
    response = client.get(f"/api/v1/services/{service_}/pipeline", params={"environment": environment})
    assert response.status_code == 200, response.text
    answer: Json = response.json()
    return answer


# ---------------------------------------------------------------- which pipeline, and why


def test_without_overrides_each_deploy_gets_the_product_default_of_its_tier(org: Org) -> None:
    tier1 = chosen(org.admin)

    assert (tier1["pipeline"]["name"], tier1["reasons"], tier1["warnings"]) == (
        "tier-1-production",
        ["default for tier 1 in production"],
        [],
    )
    assert (tier1["source"]["scope"], tier1["source"]["id"], tier1["source"]["version"]) == (
        "product",
        None,
        None,
    )
    assert len(tier1["source"]["digest"]) == 64
    assert [step["title"] for step in tier1["steps"]] == [
        "Approval by a member of team shop",
        "Send 1% of the traffic to the new version",
        "Analyse every 5 min, 6 times (30 min)",
        "Send 10% of the traffic to the new version",
        "Wait 30 min, the bake time of tier 1",
        "Send 50% of the traffic to the new version",
        "Send all of the traffic to the new version",
    ]
    assert tier1["steps"][2]["details"][:2] == ["error-rate < 0.01", "latency-p99 <= baseline * 1.2"]
    assert chosen(org.admin, environment="staging")["reasons"] == ["default for tier 1 outside production"]
    assert chosen(org.admin, environment="staging")["pipeline"]["name"] == "direct"
    assert chosen(org.admin, "cart")["pipeline"]["name"] == "tier-3-production"
    assert chosen(org.admin, "ledger")["pipeline"]["name"] == "tier-2-production"


def test_each_closer_override_wins_over_the_farther_ones(org: Org) -> None:
    """Product default < organisation default < team < team in this environment < service < service in
    this environment: each apply below is one level closer, and takes over."""
    levels = [
        ("default", "org-careful", None, 'organisation default "org-careful" for tier 1 in production'),
        ("team", "shop", None, "team shop (owner of checkout) overrides every environment"),
        ("team", "shop", "production", "team shop (owner of checkout) overrides production"),
        ("service", "checkout", None, "service checkout overrides every environment"),
        ("service", "checkout", "production", "service checkout overrides production"),
    ]
    for position, (scope, ref, environment, reason) in enumerate(levels, start=1):
        name = f"level-{position}"
        applies_to = "{tiers: [1], environment_kind: production}" if scope == "default" else "{}"
        applied(org.admin, scope, ref, guarded(name, applies_to=applies_to), environment=environment)

        now = chosen(org.admin)

        assert (now["pipeline"]["name"], now["reasons"]) == (name, [reason])
        assert (now["source"]["scope"], now["source"]["version"]) == (scope, 1)
    # the overrides for production only leave staging to the closest ones for every environment
    staging = chosen(org.admin, environment="staging")
    assert (staging["pipeline"]["name"], staging["reasons"]) == (
        "level-4",
        ["service checkout overrides every environment"],
    )
    # and the other services of the team get the team's override
    assert chosen(org.admin, "cart")["reasons"] == ["team shop (owner of cart) overrides production"]


def test_an_override_that_does_not_apply_is_passed_over_and_said_so(org: Org) -> None:
    applied(org.admin, "team", "shop", guarded("shop-tier-1", applies_to="{tiers: [1]}"))
    applied(
        org.admin,
        "service",
        "cart",
        unguarded("cart-prod-eu", 10).replace(
            "steps:", "applies_to: {environment_kind: non-production}\nsteps:"
        ),
    )

    cart = chosen(org.admin, "cart")

    assert (cart["pipeline"]["name"], cart["reasons"]) == (
        "tier-3-production",
        [
            "default for tier 3 in production",
            "the override of service cart for every environment does not apply: it is for non-production "
            "environments and production is production",
            "the override of team shop for every environment does not apply: it is for tier 1 and cart is "
            "tier 3",
        ],
    )
    assert chosen(org.admin)["pipeline"]["name"] == "shop-tier-1"


def test_a_tier_1_production_pipeline_without_a_second_person_is_flagged_for_the_orchestrator(
    org: Org,
) -> None:
    applied(org.admin, "service", "checkout", unguarded("fast"), environment="production")

    assert chosen(org.admin)["warnings"] == [
        "tier 1 in production needs a second person's approval and this pipeline asks for none before "
        "traffic moves: the deploy asks for one first (the two-person rule)"
    ]
    assert chosen(org.admin, "cart")["warnings"] == []


# ---------------------------------------------------------------- versions


def test_the_same_body_is_unchanged_and_a_changed_body_is_the_next_version(org: Org) -> None:
    first = applied(org.admin, "team", "shop", guarded("shop"))
    as_json = yaml.safe_load(guarded("shop"))  # the same pipeline sent as JSON: the same body
    again = org.admin.put("/api/v1/pipelines/team/shop", json=as_json)
    changed = applied(org.admin, "team", "shop", guarded("shop", first=20), status=200)

    assert (first["outcome"], first["pipeline"]["version"], first["previous_version"]) == ("created", 1, None)
    assert again.status_code == 200
    assert (again.json()["outcome"], again.json()["pipeline"]["version"]) == ("unchanged", 1)
    assert again.json()["pipeline"]["digest"] == first["pipeline"]["digest"]
    assert (changed["outcome"], changed["pipeline"]["version"], changed["previous_version"]) == (
        "updated",
        2,
        1,
    )
    assert changed["pipeline"]["digest"] != first["pipeline"]["digest"]
    pipeline_id = first["pipeline"]["id"]
    history = org.admin.get(f"/api/v1/pipelines/{pipeline_id}/versions").json()
    admin = changed["pipeline"]["updated_by"]
    assert admin.startswith("token:")
    assert [(v["version"], v["digest"], v["created_by"]) for v in history] == [
        (2, changed["pipeline"]["digest"], admin),
        (1, first["pipeline"]["digest"], admin),
    ]
    assert history[1]["pipeline"]["steps"][1] == {"deploy": {"name": None, "weight": 5, "instances": None}}
    detail = org.admin.get(f"/api/v1/pipelines/{pipeline_id}").json()
    assert (detail["key"], detail["version"], detail["pipeline"]["steps"][1]["deploy"]["weight"]) == (
        "team:shop",
        2,
        20,
    )
    listed = org.admin.get("/api/v1/pipelines").json()
    assert [(p["key"], p["version"]) for p in listed] == [
        ("team:shop", 2),
        ("product:direct", None),
        ("product:tier-1-production", None),
        ("product:tier-2-production", None),
        ("product:tier-3-production", None),
    ]


def test_an_apply_based_on_a_stale_version_is_refused_naming_both(org: Org) -> None:
    applied(org.admin, "team", "shop", guarded("shop"), base_version=0)
    applied(org.admin, "team", "shop", guarded("shop", first=20), base_version=1, status=200)

    stale = put(org.admin, "team", "shop", guarded("shop", first=30), base_version=1)
    new_expected = put(org.admin, "service", "cart", guarded("cart"), base_version=3)

    error = error_of(stale, 409, "pipelines.stale_version")
    assert error["message"] == (
        "pipeline team:shop is at version 2; this apply was based on version 1: read it again and apply "
        "your change on top of it"
    )
    assert error["details"] == {"based_on": 1, "current": 2}
    assert error_of(new_expected, 409, "pipelines.stale_version")["details"] == {"based_on": 3, "current": 0}


def test_racing_applies_of_one_version_one_wins_and_one_is_refused(org: Org, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's writers take turns (BEGIN IMMEDIATE): two applies cannot interleave")
    applied(org.admin, "team", "shop", guarded("shop"))
    barrier = threading.Barrier(2)
    answers: dict[int, httpx.Response] = {}

    def race(first: int) -> None:
        barrier.wait(timeout=10)
        answers[first] = put(org.admin, "team", "shop", guarded("shop", first=first), base_version=1)

    threads = [threading.Thread(target=race, args=(first,)) for first in (20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answer.status_code for answer in answers.values()) == [200, 409]
    [lost] = [answer for answer in answers.values() if answer.status_code == 409]
    assert lost.json()["error"]["details"] == {"based_on": 1, "current": 2}
    [won] = [answer for answer in answers.values() if answer.status_code == 200]
    versions = org.admin.get(f"/api/v1/pipelines/{won.json()['pipeline']['id']}/versions").json()
    assert [v["version"] for v in versions] == [2, 1]


def _waiting_on_a_lock(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


@pytest.mark.parametrize("exists", [True, False], ids=["next-version", "first-version"])
def test_the_guard_alone_decides_a_race_without_a_base_version(
    org: Org, runtime: Runtime, clock: FrozenClock, db_url: str, exists: bool
) -> None:
    """Both applies read the pipeline before either writes: the first one's write holds the row (or the
    new key); the second waits on it, then finds it moved and is refused, never a 500."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's writers take turns (BEGIN IMMEDIATE): two applies cannot interleave")
    if exists:
        applied(org.admin, "team", "shop", guarded("shop"))
    outcome: list[BaseException | str] = []

    def second() -> None:
        try:
            with transaction(runtime.writers) as session:
                result = service.apply_pipeline(
                    session,
                    SYSTEM,
                    "team",
                    "shop",
                    read_pipeline_text(guarded("shop", 30), "b"),
                    at=clock.now(),
                )
                outcome.append(result.outcome)
        except BaseException as exc:
            outcome.append(exc)

    with transaction(runtime.writers) as session:
        first = service.apply_pipeline(
            session, SYSTEM, "team", "shop", read_pipeline_text(guarded("shop", 20), "a"), at=clock.now()
        )
        racer = threading.Thread(target=second)
        racer.start()
        wait_until(
            lambda: _waiting_on_a_lock(runtime), timeout=10, what="the second apply to wait on the first"
        )
    racer.join(timeout=30)

    [refused] = outcome
    assert isinstance(refused, Conflict), refused
    assert refused.code == "pipelines.raced"
    expected = 2 if exists else 1
    assert (first.pipeline.version, refused.details) == (
        expected,
        {"based_on": expected - 1, "current": expected},
    )


def test_the_guards_refuse_a_stale_row_and_a_taken_key_on_both_dialects(
    org: Org, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    applied(org.admin, "team", "shop", guarded("shop"))
    pipeline = read_pipeline_text(guarded("shop", 40), "x")
    with transaction(sessions) as session:
        row = store.row_by_key(session, "team:shop")
        assert row is not None
        session.expunge(row)
        row.current_version = 0  # as read before another apply moved it on

        assert not store.advance(session, row, pipeline=pipeline, digest="d", by="x", at=clock.now())
        taken = store.create(
            session,
            scope="team",
            ref="shop",
            environment=None,
            pipeline=pipeline,
            digest="d",
            by="x",
            at=clock.now(),
        )
        assert taken is None
        assert session.scalar(text("SELECT current_version FROM pipelines WHERE key = 'team:shop'")) == 1


# ---------------------------------------------------------------- rights


@pytest.mark.parametrize(
    ("who", "scope", "ref", "environment", "status"),
    [
        ("alice", "team", "shop", None, 201),  # the team's owner
        ("alice", "service", "cart", None, 201),  # an owner of the service's team
        ("alice", "service", "checkout", "staging", 201),
        ("bob", "team", "shop", None, 403),  # a member, not an owner
        ("bob", "service", "cart", None, 403),
        ("carol", "team", "shop", None, 403),  # another team's owner
        ("carol", "service", "checkout", None, 403),
        ("alice", "default", "org-careful", None, 403),  # organisation defaults: admins only
        ("admin", "default", "org-careful", None, 201),
    ],
)
def test_team_owners_apply_their_pipelines_and_admins_the_defaults(
    org: Org, who: str, scope: str, ref: str, environment: str | None, status: int
) -> None:
    client = getattr(org, who)

    response = put(client, scope, ref, guarded("p"), environment=environment)

    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["code"] == "access.forbidden"


def test_removing_a_tier_1_production_approval_takes_an_admin(org: Org) -> None:
    refused = put(org.alice, "team", "shop", unguarded("quick"))
    loosened = put(org.alice, "team", "shop", guarded("quick").replace(", two_person: true", ""))
    late = put(
        org.alice,
        "team",
        "shop",
        unguarded("quick")
        .replace("steps:", "steps:\n  - deploy: {weight: 1}")
        .replace(
            "  - deploy: {weight: 100}",
            "  - approval: {who: {team_role: member}, two_person: true}\n  - deploy: {weight: 100}",
        ),
    )

    error = error_of(refused, 403, "pipelines.weakens_approval")
    assert error["message"] == (
        "only admins may remove or loosen approvals the two-person rule covers: checkout in production: "
        "the approval by a member of the owning team, a second person, before any traffic (from default for "
        "tier 1 in production)"
    )
    assert error_of(loosened, 403, "pipelines.weakens_approval")
    assert error_of(late, 403, "pipelines.weakens_approval")
    # what is not a tier-1 production deploy, or keeps the approval (or makes it stricter), is the team's
    assert put(org.alice, "team", "shop", unguarded("quick"), environment="staging").status_code == 201
    assert put(org.alice, "service", "cart", unguarded("quick")).status_code == 201
    stricter = guarded("strict").replace("team_role: member", "team_role: owner")
    assert put(org.alice, "service", "checkout", stricter).status_code == 201
    # an admin may, and it is said so
    done = applied(org.admin, "team", "shop", unguarded("quick"))
    assert done["weakened"] == []  # checkout's own override still asks the team's owners
    removed = applied(org.admin, "service", "checkout", unguarded("quick"), status=200)
    assert removed["weakened"] == [
        "checkout in production: the approval by an owner of the owning team, a second person, before any "
        "traffic (from service checkout overrides every environment)"
    ]


def test_every_change_is_audited_with_both_versions(org: Org) -> None:
    applied(org.admin, "team", "shop", guarded("shop"))
    applied(org.admin, "team", "shop", guarded("shop"), status=200)  # unchanged: nothing to audit
    applied(org.admin, "team", "shop", unguarded("shop"), status=200)

    with org.sessions() as session:
        entries = audit.entries_for(session, target=("pipeline", "team:shop"))

    assert [e.action for e in entries] == ["pipeline.apply"] * 2
    assert {e.actor for e in entries} == {org.admin.get("/api/v1/me").json()["name"]}
    newest, oldest = entries
    assert (oldest.before, oldest.after["version"]) == (None, 1)  # type: ignore[index]
    assert (newest.before["version"], newest.after["version"]) == (1, 2)  # type: ignore[index]
    assert newest.after["pipeline"]["name"] == "shop"  # type: ignore[index]
    assert newest.note is not None and newest.note.startswith(
        "removes or loosens approvals: checkout in production"
    )


# ---------------------------------------------------------------- what an apply is checked against


def test_an_apply_names_the_problem_and_where(
    org: Org, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_yaml = put(org.admin, "team", "shop", "name: p\nsteps:\n  - deploy: {weight: 150}\n")
    unknown_team = put(
        org.admin,
        "team",
        "shop",
        unguarded("p").replace("steps:", "steps:\n  - approval: {who: {team: shoq}}"),
    )
    no_headers = put(
        org.admin,
        "team",
        "shop",
        unguarded("p").replace(
            "steps:", "steps:\n  - notify: {webhook: 'https://h.example.com', headers: [ops]}"
        ),
    )
    never = put(
        org.admin,
        "team",
        "shop",
        unguarded("p").replace("steps:", "applies_to: {environment_kind: production}\nsteps:"),
        environment="staging",
    )

    assert error_of(bad_yaml, 422, "pipelines.invalid")["message"] == (
        "request body:3: steps[0] (deploy): weight: input should be less than or equal to 100 (it is 150)"
    )
    assert error_of(unknown_team, 422, "pipelines.invalid")["details"][0] == {
        "file": "request body",
        "line": None,
        "step": "steps[0] (approval)",
        "field": "who.team",
        "message": "team \"shoq\" is not in the catalog; did you mean 'shop'?",
    }
    assert error_of(no_headers, 422, "pipelines.invalid")["message"] == (
        'request body: steps[0] (notify): headers[0]: header set "ops" is not in the QD_WEBHOOK_HEADERS '
        "setting (it holds: none)"
    )
    assert error_of(never, 422, "pipelines.invalid")["message"] == (
        "request body: applies_to: this override is for staging, but it is for production environments and "
        "staging is not one: it would never apply"
    )
    assert error_of(put(org.admin, "service", "nope", unguarded("p")), 404, "catalog.service_not_found")
    assert error_of(
        put(org.admin, "team", "shop", unguarded("p"), environment="qa"), 404, "deploys.unknown_environment"
    )
    assert put(org.admin, "product", "direct", unguarded("p")).status_code == 422
    assert error_of(put(org.admin, "default", "Org Careful", unguarded("p")), 422, "pipelines.bad_name")
    tier_1_production = guarded("p", applies_to="{tiers: [1], environment_kind: production}")
    assert put(org.admin, "team", "shop", tier_1_production, environment="production").status_code == 201
    monkeypatch.setattr(settings, "webhook_headers", {"ops": {"Authorization": "Bearer x"}})
    assert put(org.admin, "team", "shop", no_headers.request.content.decode()).status_code == 201


# ---------------------------------------------------------------- page, schema, the version a deploy ran


def test_the_page_shows_each_environment_s_pipeline_why_its_version_and_steps(org: Org) -> None:
    applied(org.admin, "service", "checkout", guarded("checkout-staging"), environment="staging")

    page = org.alice.get("/services/checkout/pipeline")

    assert page.status_code == 200
    html = parse_html(page.text)
    production, staging = html.by_id("pipeline-production"), html.by_id("pipeline-staging")
    assert (
        "tier-1-production" in production.text() and "default for tier 1 in production" in production.text()
    )
    assert "as shipped with Quarterdeck" in production.text()
    steps = [li.text() for li in production.all(cls="pipeline-steps")[0].children if not isinstance(li, str)]
    assert steps[0].startswith("Approval by a member of team shop (second person) a second person")
    assert steps[2].startswith("Analyse every 5 min, 6 times (30 min) (canary at 1%) error-rate < 0.01")
    assert steps[4] == "Wait 30 min, the bake time of tier 1"
    assert "service checkout overrides staging" in staging.text()
    version = staging.all(cls="pipeline-version")[0]
    assert version.text().startswith("1 applied") and version.all("time")
    assert staging.all(cls="pipeline-digest")[0].text().startswith("sha256:")
    deploys = parse_html(org.alice.get("/services/checkout/deploys").text)
    assert deploys.by_id("pipeline-link").attrs["href"] == "/services/checkout/pipeline"


def test_the_json_schema_is_served_to_anyone_and_accepts_the_shipped_defaults(
    anon_client: TestClient,
) -> None:
    response = anon_client.get("/api/v1/schema/pipeline.json")

    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema_rs.Draft202012Validator(schema)
    shipped = yaml.safe_load((ROOT / "quarterdeck/deploys/pipelines" / DEFAULTS_FILE).read_text())
    assert all(validator.is_valid(pipeline) for pipeline in shipped["pipelines"])
    paths = anon_client.get("/api/v1/openapi.json").json()["paths"]
    assert {path: sorted(paths[path]) for path in paths if "pipeline" in path} == {
        "/api/v1/schema/pipeline.json": ["get"],
        "/api/v1/pipelines/{scope}/{ref}": ["put"],
        "/api/v1/pipelines": ["get"],
        "/api/v1/pipelines/{pipeline_id}": ["get"],
        "/api/v1/pipelines/{pipeline_id}/versions": ["get"],
        "/api/v1/services/{slug}/pipeline": ["get"],
    }


def test_a_deploy_records_the_exact_version_it_runs(
    org: Org, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    applied(org.admin, "service", "checkout", guarded("mine"), environment="staging")
    with transaction(sessions) as session:
        product = service.pipeline_for(session, "checkout", "production")
        first = service.pipeline_version_ref(session, product, at=clock.now())
        again = service.pipeline_version_ref(
            session, service.pipeline_for(session, "checkout", "production"), at=clock.now()
        )
        override = service.pipeline_version_ref(
            session, service.pipeline_for(session, "checkout", "staging"), at=clock.now()
        )
        ran = service.stored_pipeline(session, *first[:2])

    assert first == again and first.version == 1 and first.digest == product.source.digest
    assert ran == product.pipeline
    assert override[1:] == (1, chosen(org.admin, environment="staging")["source"]["digest"])
    assert chosen(org.admin)["source"]["id"] == first.pipeline_id  # the stored product default, as shipped
    listed = {p["key"]: p for p in org.admin.get("/api/v1/pipelines").json()}
    assert (listed["product:tier-1-production"]["id"], listed["product:tier-1-production"]["updated_by"]) == (
        first.pipeline_id,
        "quarterdeck",
    )


def test_the_answer_is_json_for_scripts(org: Org) -> None:
    answer = chosen(org.admin)

    assert json.loads(json.dumps(answer))["pipeline"]["steps"][0] == {
        "approval": {"name": "second person", "who": {"team_role": "member"}, "two_person": True}
    }


def test_before_any_production_environment_exists_the_approval_is_still_kept(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    create_team(client, "shop")
    create_service(client, "checkout", "shop", tier=1)
    make_user(sessions, clock, "alice@example.com", teams={"shop": "owner"})
    token = make_token(sessions, clock, user="alice@example.com", scopes=["deploy"], name="alice")
    with TestClient(app_under_test, headers=bearer(token)) as alice:
        refused = put(alice, "team", "shop", unguarded("quick"))

    assert error_of(refused, 403, "pipelines.weakens_approval")["details"] == {
        "weakened": [
            "checkout in any production environment: the approval by a member of the owning team, a second "
            "person, before any traffic (from default for tier 1 in production)"
        ]
    }
