"""The services API: list, get, create, replace, patch, delete; ETags, dependencies and bad input.

Every test starts from an empty database (see conftest.py) and builds what it needs through the API.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers import Json, create_service, create_team, error_of, problem, team_brief

API = "/api/v1/services"
NOW = "2026-11-25T12:00:00Z"  # conftest's frozen clock
OWNER = "payments-team"
"""The team owning the services a test makes, unless it names another."""


# ---------------------------------------------------------------- helpers


def get_service(client: TestClient, slug: str) -> Json:
    response = client.get(f"{API}/{slug}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def slugs_of(response: Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["slug"] for item in response.json()["items"]]


# ---------------------------------------------------------------- create and get


def test_create_answers_201_with_etag_and_every_field_resolved(client: TestClient) -> None:
    create_team(client, OWNER, email="payments@example.com", chat="#payments", name="Payments")
    person = client.post(
        "/api/v1/people",
        json={"email": "ada@example.com", "name": "Ada Lovelace", "chat": "@ada", "title": "Staff Engineer"},
    )
    assert person.status_code == 201, person.text
    system = client.post("/api/v1/systems", json={"slug": "payments", "title": "Payments"})
    assert system.status_code == 201, system.text

    response = client.post(
        API,
        json={
            "slug": "payments-api",
            "title": "Payments API",
            "description": "Takes card payments.",
            "type": "service",
            "lifecycle": "production",
            "tier": 1,
            "system": "payments",
            "owner": "payments-team",
            "contacts": [
                {"role": "tech-lead", "person": "ADA@example.com"},
                {"role": "product-manager", "person": "grace"},
            ],
            "links": [
                {"kind": "runbook", "url": "https://wiki.example.com/payments/runbook", "title": "Runbook"},
                {"kind": "repo", "url": "https://git.example.com/payments/api"},
            ],
            "tags": ["python", "pci", "python"],
            "depends_on": ["ledger"],
            "image": "registry.example.com/payments/api",
            "annotations": {"github.com/project-slug": "example/payments-api"},
            "custom": {"cost_center": "4100", "pci_scope": True, "replicas": 3},
        },
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert "location" in response.headers
    body = response.json()
    assert re.fullmatch(r'"[^"]+"', response.headers["etag"])
    assert response.headers["etag"] == body["etag"]
    assert body == {
        "kind": "component",
        "slug": "payments-api",
        "title": "Payments API",
        "description": "Takes card payments.",
        "type": "service",
        "lifecycle": "production",
        "tier": 1,
        "owner": "payments-team",
        "system": "payments",
        "tags": ["pci", "python"],
        "url": "/services/payments-api",
        "owner_detail": {
            "ref": "payments-team",
            "team": team_brief("payments-team", "Payments", "payments@example.com", "#payments"),
            "person": None,
        },
        "system_detail": {
            "type": "system",
            "ref": "payments",
            "slug": "payments",
            "name": "Payments",
            "url": "/systems/payments",
            "exists": True,
        },
        "contacts": [
            {
                "role": "tech-lead",
                "ref": "ada@example.com",
                "person": {
                    "slug": "ada",
                    "name": "Ada Lovelace",
                    "email": "ada@example.com",
                    "chat_handle": "@ada",
                    "title": "Staff Engineer",
                    "url": "/people/ada",
                },
            },
            {"role": "product-manager", "ref": "grace", "person": None},
        ],
        "links": [
            {"kind": "runbook", "url": "https://wiki.example.com/payments/runbook", "title": "Runbook"},
            {"kind": "repo", "url": "https://git.example.com/payments/api", "title": ""},
        ],
        "depends_on": [
            {
                "relation": "depends_on",
                "kind": "component",
                "slug": "ledger",
                "title": None,
                "tier": None,
                "url": None,
                "exists": False,
            }
        ],
        "dependents": [],
        "image": "registry.example.com/payments/api",
        "definition": None,
        "annotations": {"github.com/project-slug": "example/payments-api"},
        "annotation_links": [
            {
                "key": "github.com/project-slug",
                "label": "GitHub repository",
                "value": "example/payments-api",
                "url": "https://github.com/example/payments-api",
                "reason": None,
                "masked": False,
            }
        ],
        "custom": {"cost_center": "4100", "pci_scope": True, "replicas": 3},
        "source": {"source": "ui", "file": None, "line": None, "detached_from": None, "descriptor": None},
        "import_errors": [],
        "problems": [
            {
                "field": "contacts",
                "ref": "grace",
                "target": "person",
                "message": "contact 'grace' is not in the catalog",
            },
            {
                "field": "depends_on",
                "ref": "ledger",
                "target": "service",
                "message": "dependency 'ledger' is not in the catalog",
            },
        ],
        "version": 1,
        "etag": body["etag"],
        "created_at": NOW,
        "updated_at": NOW,
    }
    assert get_service(client, "payments-api") == body


def test_owner_and_system_not_in_the_catalog_are_unresolved_until_created(client: TestClient) -> None:
    body = create_service(client, "payments-api", owner="ghost-team", system="nowhere")

    assert body["owner_detail"] == {"ref": "ghost-team", "team": None, "person": None}
    assert body["system_detail"] == {
        "type": "system",
        "ref": "nowhere",
        "slug": "nowhere",
        "name": None,
        "url": None,
        "exists": False,
    }
    # Defaults from the descriptor format.
    defaults = {key: body[key] for key in ("title", "type", "lifecycle", "tier", "tags", "contacts", "links")}
    assert defaults == {
        "title": "payments-api",
        "type": "service",
        "lifecycle": "production",
        "tier": None,
        "tags": [],
        "contacts": [],
        "links": [],
    }

    create_team(client, "ghost-team", name="Ghosts")

    owner = get_service(client, "payments-api")["owner_detail"]
    assert owner == {"ref": "ghost-team", "team": team_brief("ghost-team", "Ghosts"), "person": None}


def test_owner_given_as_a_person_or_a_backstage_reference_is_resolved(client: TestClient) -> None:
    create_team(client, OWNER, name="Payments")
    ada = client.post("/api/v1/people", json={"email": "ada@example.com", "name": "Ada Lovelace"}).json()
    ada_brief = {key: ada[key] for key in ("slug", "name", "email", "chat_handle", "title", "url")}
    team = team_brief("payments-team", "Payments")
    # The API takes an owner as a team slug, an e-mail, or a Backstage `user:`/`group:` reference, and
    # keeps e-mails in lower case everywhere else (people, contacts): each form must lead to its owner.
    owners = ["payments-team", "ada@example.com", "user:ada", "Ada@Example.com", "group:payments-team"]

    resolved = {
        owner: create_service(client, f"service-{number}", owner=owner)["owner_detail"]
        for number, owner in enumerate(owners)
    }

    assert {owner: (detail["team"], detail["person"]) for owner, detail in resolved.items()} == {
        "payments-team": (team, None),
        "ada@example.com": (None, ada_brief),
        "user:ada": (None, ada_brief),
        "Ada@Example.com": (None, ada_brief),
        "group:payments-team": (team, None),
    }


def test_location_of_a_created_service_is_its_api_resource(client: TestClient) -> None:
    created = client.post(API, json={"slug": "payments-api", "owner": "payments-team"})
    assert created.status_code == 201, created.text

    location = created.headers["location"]
    followed = client.get(location)

    # Teams, people and systems answer /api/v1/<plural>/<key>; a service must too, not its HTML page.
    assert location == f"{API}/payments-api"
    assert followed.headers["content-type"] == "application/json"
    assert followed.json() == created.json()


def test_get_answers_etag_and_304_when_if_none_match_matches(client: TestClient) -> None:
    etag = create_service(client, "payments-api", OWNER)["etag"]

    plain = client.get(f"{API}/payments-api")
    assert (plain.status_code, plain.headers["etag"]) == (200, etag)

    cached = client.get(f"{API}/payments-api", headers={"If-None-Match": etag})
    assert (cached.status_code, cached.headers["etag"], cached.content) == (304, etag, b"")

    other = client.get(f"{API}/payments-api", headers={"If-None-Match": '"something-else"'})
    assert (other.status_code, other.json()["slug"]) == (200, "payments-api")

    patched = client.patch(f"{API}/payments-api", json={"tier": 2})
    assert patched.status_code == 200, patched.text
    new = patched.headers["etag"]
    assert new != etag
    assert patched.json()["etag"] == new
    assert client.get(f"{API}/payments-api", headers={"If-None-Match": etag}).status_code == 200
    assert client.get(f"{API}/payments-api", headers={"If-None-Match": new}).status_code == 304

    assert client.get(f"{API}/Payments-API?kind=component").json()["etag"] == new
    error = error_of(client.get(f"{API}/payments-api?kind=api"), 404, "catalog.service_not_found")
    assert error["message"] == "api 'payments-api' is not in the catalog"


# ---------------------------------------------------------------- list


def test_list_paginates_in_slug_order_with_total(client: TestClient) -> None:
    for slug in ["ledger", "checkout", "payments-api", "fraud-score"]:
        create_service(client, slug, OWNER)
    create_service(
        client,
        "audit-log",
        OWNER,
        title="Audit log",
        description="Who did what.",
        tier=1,
        system="payments",
        tags=["python", "pci"],
        depends_on=["ledger"],
    )

    first = client.get(f"{API}?per_page=2")
    assert [first.json()[key] for key in ("total", "page", "per_page")] == [5, 1, 2]
    assert slugs_of(first) == ["audit-log", "checkout"]
    assert first.json()["items"][0] == {
        "kind": "component",
        "slug": "audit-log",
        "title": "Audit log",
        "description": "Who did what.",
        "type": "service",
        "lifecycle": "production",
        "tier": 1,
        "owner": "payments-team",
        "system": "payments",
        "tags": ["pci", "python"],
        "url": "/services/audit-log",
    }
    assert slugs_of(client.get(f"{API}?per_page=2&page=2")) == ["fraud-score", "ledger"]
    last = client.get(f"{API}?per_page=2&page=3")
    assert (slugs_of(last), last.json()["total"]) == (["payments-api"], 5)
    beyond = client.get(f"{API}?per_page=2&page=4")
    assert beyond.json() == {"items": [], "total": 5, "page": 4, "per_page": 2, "next_cursor": None}
    everything = client.get(API).json()
    assert (everything["total"], everything["page"], everything["per_page"], len(everything["items"])) == (
        5,
        1,
        50,
        5,
    )


def test_list_filters(client: TestClient) -> None:
    create_service(
        client, "payments-api", OWNER, title="Payments API", tier=1, tags=["python", "pci"], system="payments"
    )
    create_service(
        client,
        "ledger",
        OWNER,
        description="Double-entry book of record.",
        tier=2,
        tags=["java"],
        system="payments",
        type="database",
    )
    create_service(
        client,
        "checkout-web",
        owner="shop-team",
        title="Checkout",
        tier=1,
        lifecycle="experimental",
        tags=["python"],
        type="website",
    )
    create_service(
        client, "legacy-cart", owner="shop-team", tier=4, lifecycle="deprecated", description="Old checkout."
    )
    expected = {
        "owner=payments-team": ["ledger", "payments-api"],
        "owner=Shop-Team": ["checkout-web", "legacy-cart"],
        "owner=nobody": [],
        "tier=1": ["checkout-web", "payments-api"],
        "tier=4": ["legacy-cart"],
        "lifecycle=deprecated": ["legacy-cart"],
        "lifecycle=experimental": ["checkout-web"],
        "tag=python": ["checkout-web", "payments-api"],
        "tag=java": ["ledger"],
        "system=payments": ["ledger", "payments-api"],
        "type=website": ["checkout-web"],
        "kind=component": ["checkout-web", "ledger", "legacy-cart", "payments-api"],
        "kind=api": [],
        "q=checkout": ["checkout-web", "legacy-cart"],  # a slug, and a description
        "q=BOOK": ["ledger"],  # a description, in any case
        "q=payments+api": ["payments-api"],  # a title
        "owner=shop-team&tier=1": ["checkout-web"],
        "tag=python&system=payments&tier=1": ["payments-api"],
    }

    answers = {query: client.get(f"{API}?{query}") for query in expected}

    assert {query: slugs_of(response) for query, response in answers.items()} == expected
    assert {query: answers[query].json()["total"] for query in expected} == {
        query: len(slugs) for query, slugs in expected.items()
    }


def test_list_text_filter_takes_like_wildcards_literally(client: TestClient) -> None:
    create_service(client, "ledger_v2", OWNER)
    create_service(client, "ledger-v2", OWNER)
    create_service(client, "audit", OWNER, description="100% of writes")

    found = {q: slugs_of(client.get(API, params={"q": q})) for q in ["_", "%", "ledger_"]}

    assert found == {"_": ["ledger_v2"], "%": ["audit"], "ledger_": ["ledger_v2"]}


def test_bad_query_parameters_are_refused_with_the_parameter_named(client: TestClient) -> None:
    create_service(client, "payments-api", OWNER)
    queries = {
        f"{API}?tier=9": "tier",
        f"{API}?tier=0": "tier",
        f"{API}?tier=high": "tier",
        f"{API}?per_page=0": "per_page",
        f"{API}?per_page=501": "per_page",
        f"{API}?page=0": "page",
        f"{API}?page=two": "page",
        f"{API}?kind=banana": "kind",
        f"{API}?q={'x' * 201}": "q",
        f"{API}/payments-api?kind=banana": "kind",
    }

    answers = {url: client.get(url) for url in queries}

    assert {url: problem(response) for url, response in answers.items()} == {
        url: (422, "request.invalid", [field]) for url, field in queries.items()
    }
    assert {url: response.json()["error"]["details"][0]["in"] for url, response in answers.items()} == {
        url: "query" for url in queries
    }
    assert all(
        answers[url].json()["error"]["message"].startswith(f"{field}: ") for url, field in queries.items()
    )


# ---------------------------------------------------------------- replace and patch


def test_replace_sets_every_field_and_resets_the_ones_left_out(client: TestClient) -> None:
    created = create_service(
        client,
        "payments-api",
        OWNER,
        title="Payments API",
        tier=1,
        tags=["pci"],
        contacts=[{"role": "tech-lead", "person": "ada"}],
        depends_on=["ledger"],
        custom={"pci_scope": True},
    )

    response = client.put(
        f"{API}/payments-api",
        json={"slug": "payments-api", "owner": "shop-team", "title": "Payments", "lifecycle": "deprecated"},
        headers={"If-Match": created["etag"]},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == body["etag"] != created["etag"]
    assert (body["owner"], body["title"], body["lifecycle"], body["version"]) == (
        "shop-team",
        "Payments",
        "deprecated",
        2,
    )
    assert (body["tier"], body["tags"], body["contacts"], body["depends_on"], body["custom"]) == (
        None,
        [],
        [],
        [],
        {},
    )
    assert body["created_at"] == created["created_at"]
    assert get_service(client, "payments-api") == body


def test_patch_changes_only_the_fields_it_names(client: TestClient) -> None:
    created = create_service(
        client,
        "payments-api",
        OWNER,
        title="Payments API",
        description="Takes card payments.",
        tier=1,
        system="payments",
        lifecycle="experimental",
        type="worker",
        tags=["pci", "python"],
        contacts=[{"role": "tech-lead", "person": "ada@example.com"}, {"role": "security", "person": "sam"}],
        links=[
            {"kind": "runbook", "url": "https://wiki.example.com/runbook"},
            {"kind": "docs", "url": "https://docs.example.com", "title": "Docs"},
        ],
        depends_on=["ledger", "fraud-score"],
        image="registry.example.com/payments/api",
        annotations={"github.com/project-slug": "example/payments-api"},
        custom={"cost_center": "4100", "pci_scope": True},
    )

    response = client.patch(
        f"{API}/payments-api", json={"tier": 2, "tags": ["pci"]}, headers={"If-Match": created["etag"]}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    changed = {"tier": 2, "tags": ["pci"], "version": 2, "etag": response.headers["etag"]}
    assert body == {**created, **changed}
    assert body["etag"] != created["etag"]
    assert get_service(client, "payments-api") == body

    cleared = client.patch(f"{API}/payments-api", json={"tier": None, "system": None}).json()
    assert (cleared["tier"], cleared["system"], cleared["system_detail"], cleared["tags"]) == (
        None,
        None,
        None,
        ["pci"],
    )


WRITES: dict[str, Json] = {
    "PUT": {"slug": "payments-api", "owner": "payments-team", "title": "Payments v2"},
    "PATCH": {"title": "Payments v2"},
}


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_write_honours_if_match(client: TestClient, method: str) -> None:
    first = create_service(client, "payments-api", OWNER, title="Payments v1")
    url = f"{API}/payments-api"

    matching = client.request(method, url, json=WRITES[method], headers={"If-Match": first["etag"]})
    assert matching.status_code == 200, matching.text
    second = matching.json()
    assert (second["title"], second["version"], matching.headers["etag"]) == (
        "Payments v2",
        2,
        second["etag"],
    )

    stale = client.request(
        method, url, json={**WRITES[method], "title": "Lost update"}, headers={"If-Match": first["etag"]}
    )
    error = error_of(stale, 412, "catalog.stale_etag")
    assert second["etag"] in error["message"]
    assert get_service(client, "payments-api") == second

    unconditional = client.request(method, url, json={**WRITES[method], "title": "Payments v3"})
    assert unconditional.status_code == 200, unconditional.text
    assert (unconditional.json()["title"], unconditional.json()["version"]) == ("Payments v3", 3)

    star = client.request(
        method, url, json={**WRITES[method], "title": "Payments v4"}, headers={"If-Match": "*"}
    )
    assert (star.status_code, star.json()["version"]) == (200, 4)


def test_slug_cannot_be_changed(client: TestClient) -> None:
    created = create_service(client, "payments-api", OWNER)
    attempts = {
        "PUT": {"slug": "payments-core", "owner": "payments-team"},
        "PATCH": {"slug": "payments-core"},
    }

    answers = {
        method: client.request(method, f"{API}/payments-api", json=body) for method, body in attempts.items()
    }

    assert {method: problem(response) for method, response in answers.items()} == {
        "PUT": (422, "catalog.slug_immutable", ["slug"]),
        "PATCH": (422, "catalog.slug_immutable", ["slug"]),
    }
    assert answers["PUT"].json()["error"]["details"] == [{"field": "slug", "message": "cannot be changed"}]
    assert get_service(client, "payments-api") == created
    error_of(client.get(f"{API}/payments-core"), 404, "catalog.service_not_found")

    same = client.put(f"{API}/payments-api", json={"slug": "payments-api", "owner": "shop-team"})
    assert (same.status_code, same.json()["owner"]) == (200, "shop-team")


# ---------------------------------------------------------------- delete


def test_delete_honours_if_match_and_frees_the_slug(
    client: TestClient,
) -> None:
    first = create_service(client, "payments-api", OWNER, title="Payments API")
    second = client.patch(f"{API}/payments-api", json={"tier": 3}).json()

    stale = client.delete(f"{API}/payments-api", headers={"If-Match": first["etag"]})

    assert second["etag"] in error_of(stale, 412, "catalog.stale_etag")["message"]
    assert get_service(client, "payments-api") == second

    deleted = client.delete(f"{API}/payments-api", headers={"If-Match": second["etag"]})

    assert (deleted.status_code, deleted.content) == (204, b"")
    error_of(client.get(f"{API}/payments-api"), 404, "catalog.service_not_found")
    error_of(client.delete(f"{API}/payments-api"), 404, "catalog.service_not_found")
    assert client.get(API).json()["total"] == 0
    assert client.get("/api/v1/search", params={"q": "payments"}).json() == []

    again = create_service(
        client, "payments-api", OWNER, tags=["pci"], contacts=[{"role": "tech-lead", "person": "ada"}]
    )
    assert (again["version"], again["title"], again["tier"]) == (1, "payments-api", None)
    assert client.delete(f"{API}/payments-api").status_code == 204  # no If-Match: deleted all the same
    error_of(client.get(f"{API}/payments-api"), 404, "catalog.service_not_found")
    assert slugs_of(client.get(f"{API}?tag=pci")) == []


def test_unknown_service_answers_404_in_the_error_shape(client: TestClient) -> None:
    create_service(client, "payments-api", OWNER)
    body = {"slug": "nope", "owner": "payments-team"}

    answers = {
        method: client.request(method, f"{API}/nope", json=body if method in {"PUT", "PATCH"} else None)
        for method in ["GET", "PUT", "PATCH", "DELETE"]
    }

    assert {
        method: error_of(response, 404, "catalog.service_not_found") for method, response in answers.items()
    } == {
        method: {
            "code": "catalog.service_not_found",
            "message": "service 'nope' is not in the catalog",
            "details": None,
        }
        for method in answers
    }
    error_of(client.get("/api/v1/nothing-here"), 404, "not_found")


# ---------------------------------------------------------------- bad input


def test_malformed_json_answers_400(client: TestClient) -> None:
    create_service(client, "payments-api", OWNER)
    broken = b'{"slug": "payments-api", "owner": '
    headers = {"Content-Type": "application/json"}

    answers = {
        method: client.request(
            method, API if method == "POST" else f"{API}/payments-api", content=broken, headers=headers
        )
        for method in ["POST", "PUT", "PATCH"]
    }

    assert {method: problem(response) for method, response in answers.items()} == {
        method: (400, "request.malformed_json", []) for method in answers
    }
    assert all(
        r.json()["error"]["message"].startswith("the body is not valid JSON") for r in answers.values()
    )
    assert get_service(client, "payments-api")["version"] == 1


def test_unknown_field_is_refused_and_named(client: TestClient) -> None:
    create_service(client, "payments-api", OWNER)
    full = {"slug": "payments-api", "owner": "payments-team", "colour": "red"}

    answers = {
        "POST": client.post(API, json={**full, "slug": "checkout"}),
        "PUT": client.put(f"{API}/payments-api", json=full),
        "PATCH": client.patch(f"{API}/payments-api", json={"colour": "red"}),
    }

    assert {method: problem(response) for method, response in answers.items()} == {
        "POST": (422, "request.invalid", ["colour"]),
        "PUT": (422, "request.invalid", ["colour"]),
        "PATCH": (422, "request.invalid", ["colour"]),
    }
    assert answers["POST"].json()["error"] == {
        "code": "request.invalid",
        "message": "colour: unknown field 'colour'",
        "details": [{"field": "colour", "in": "body", "message": "unknown field 'colour'"}],
    }
    assert all("colour" in response.json()["error"]["message"] for response in answers.values())
    assert slugs_of(client.get(API)) == ["payments-api"]
    assert get_service(client, "payments-api")["version"] == 1


def test_wrong_types_are_refused_with_the_field_named(client: TestClient) -> None:
    cases: dict[str, tuple[Any, list[str]]] = {
        "tier high": ({"tier": "high"}, ["tier"]),
        "tier 7": ({"tier": 7}, ["tier"]),
        "tier 0": ({"tier": 0}, ["tier"]),
        "tier as a string": ({"tier": "2"}, ["tier"]),
        "tier a fraction": ({"tier": 1.5}, ["tier"]),
        "tier a boolean": ({"tier": True}, ["tier"]),
        "tags not a list": ({"tags": "python"}, ["tags"]),
        "tag not a tag": ({"tags": ["Not A Tag"]}, ["tags.0"]),
        "contact without role": ({"contacts": [{"person": "ada@example.com"}]}, ["contacts.0.role"]),
        "contacts not a list": ({"contacts": "ada"}, ["contacts"]),
        "depends_on not a list": ({"depends_on": "ledger"}, ["depends_on"]),
        "depends_on not slugs": ({"depends_on": ["Ledger Service"]}, ["depends_on.0"]),
        "javascript link": ({"links": [{"kind": "docs", "url": "javascript:alert(1)"}]}, ["links.0.url"]),
        "owner null": ({"owner": None}, ["owner"]),
        "empty title": ({"title": "   "}, ["title"]),
        "annotations not strings": ({"annotations": {"a": 1}}, ["annotations.a"]),
    }

    answers = {
        name: client.post(API, json={"slug": "payments-api", "owner": "payments-team", **override})
        for name, (override, _fields) in cases.items()
    }
    answers["missing slug and owner"] = client.post(API, json={})
    answers["a list, not an object"] = client.post(API, json=["payments-api"])
    created = create_service(client, "checkout", OWNER, tier=1)
    answers["PUT tier high"] = client.put(
        f"{API}/checkout", json={"slug": "checkout", "owner": "x", "tier": "high"}
    )
    answers["PATCH tier high"] = client.patch(f"{API}/checkout", json={"tier": "high"})
    answers["PATCH contact without role"] = client.patch(
        f"{API}/checkout", json={"contacts": [{"person": "ada"}]}
    )
    answers["PATCH a list"] = client.patch(f"{API}/checkout", json=[{"tier": 2}])

    assert {name: problem(response) for name, response in answers.items()} == {
        **{name: (422, "request.invalid", fields) for name, (_override, fields) in cases.items()},
        "missing slug and owner": (422, "request.invalid", ["slug", "owner"]),
        "a list, not an object": (422, "request.invalid", ["body"]),
        "PUT tier high": (422, "request.invalid", ["tier"]),
        "PATCH tier high": (422, "request.invalid", ["tier"]),
        "PATCH contact without role": (422, "request.invalid", ["contacts.0.role"]),
        "PATCH a list": (422, "request.invalid", ["body"]),
    }
    assert slugs_of(client.get(API)) == ["checkout"]
    assert get_service(client, "checkout") == created


def test_invalid_slug_is_refused_and_a_namespaced_one_works_end_to_end(client: TestClient) -> None:
    bad = [
        "Bad Slug",
        "Payments-API",
        "-payments",
        "payments-",
        "pay--ments",
        "a/b/c",
        "team_a/api",
        "a" * 128,
        "",
    ]

    answers = {slug: client.post(API, json={"slug": slug, "owner": "payments-team"}) for slug in bad}

    assert {slug: problem(response) for slug, response in answers.items()} == {
        slug: (422, "request.invalid", ["slug"]) for slug in bad
    }
    assert client.get(API).json()["total"] == 0
    for good in ["a" * 63, "payments.api_v2", "7"]:
        assert create_service(client, good, OWNER)["slug"] == good

    # Backstage entities outside the default namespace have slugs "namespace/name"; the API takes them too.
    created = create_service(client, "team-a/payments-api", OWNER)
    url = f"{API}/team-a/payments-api"
    assert (created["url"], get_service(client, "team-a/payments-api")) == (
        "/services/team-a/payments-api",
        created,
    )
    patched = client.patch(url, json={"tier": 2}, headers={"If-Match": created["etag"]})
    assert (patched.status_code, patched.json()["tier"]) == (200, 2)
    assert client.delete(url, headers={"If-Match": patched.json()["etag"]}).status_code == 204
    error_of(client.get(url), 404, "catalog.service_not_found")


def test_slug_longer_than_63_characters_is_refused(client: TestClient) -> None:
    # docs/descriptor-format.md: "Slugs: ... 1 to 63 characters." Only a Backstage "namespace/name" may be
    # longer, and then each part keeps the limit.
    too_long = ["a" * 64, "a" * 127, "team-a/" + "b" * 64]

    answers = {
        len(slug): client.post(API, json={"slug": slug, "owner": "payments-team"}) for slug in too_long
    }

    assert {length: problem(response) for length, response in answers.items()} == {
        len(slug): (422, "request.invalid", ["slug"]) for slug in too_long
    }


def test_duplicate_create_answers_409_and_keeps_the_first(client: TestClient) -> None:
    first = create_service(client, "payments-api", OWNER, title="First")

    error = error_of(
        client.post(API, json={"slug": "payments-api", "owner": "shop-team", "title": "Second"}),
        409,
        "catalog.duplicate",
    )

    assert error["details"] == {"slug": "payments-api"}
    assert "payments-api" in error["message"]
    assert get_service(client, "payments-api") == first
    assert client.get(API).json()["total"] == 1


# ---------------------------------------------------------------- dependencies


def edge(slug: str, title: str | None = None, tier: int | None = None) -> Json:
    """An edge to a component; without a title it is one to a service not in the catalog."""
    exists = title is not None
    return {
        "relation": "depends_on",
        "kind": "component",
        "slug": slug,
        "title": title,
        "tier": tier,
        "url": f"/services/{slug}" if exists else None,
        "exists": exists,
    }


def test_dependencies_show_on_both_sides(client: TestClient) -> None:
    create_service(client, "ledger", OWNER, title="Ledger", tier=2)
    create_service(
        client,
        "payments-api",
        OWNER,
        title="Payments API",
        tier=1,
        depends_on=["ledger", "fraud-score", "api:card-network"],
    )

    payments = get_service(client, "payments-api")
    ledger = get_service(client, "ledger")

    assert payments["depends_on"] == [
        edge("ledger", "Ledger", 2),
        edge("fraud-score"),
        {**edge("card-network"), "kind": "api"},
    ]
    assert payments["dependents"] == []
    assert ledger["depends_on"] == []
    assert ledger["dependents"] == [edge("payments-api", "Payments API", 1)]


def test_dependency_on_a_missing_service_resolves_once_it_is_created(client: TestClient) -> None:
    created = create_service(client, "payments-api", OWNER, title="Payments API", depends_on=["ledger"])
    assert created["depends_on"] == [edge("ledger")]

    ledger = create_service(client, "ledger", OWNER, title="Ledger", tier=2)

    assert ledger["dependents"] == [edge("payments-api", "Payments API")]
    assert get_service(client, "payments-api")["depends_on"] == [edge("ledger", "Ledger", 2)]


def test_dependents_follow_updates_and_deletes(client: TestClient) -> None:
    create_service(client, "ledger", OWNER, title="Ledger")
    create_service(client, "payments-api", OWNER, title="Payments API", depends_on=["ledger", "ledger"])
    create_service(client, "checkout", OWNER, title="Checkout", depends_on=["ledger"])
    assert [e["slug"] for e in get_service(client, "ledger")["dependents"]] == ["checkout", "payments-api"]

    assert client.patch(f"{API}/checkout", json={"depends_on": []}).status_code == 200
    assert [e["slug"] for e in get_service(client, "ledger")["dependents"]] == ["payments-api"]

    assert client.delete(f"{API}/ledger").status_code == 204
    assert get_service(client, "payments-api")["depends_on"] == [edge("ledger")]

    assert client.delete(f"{API}/payments-api").status_code == 204
    assert create_service(client, "ledger", OWNER, title="Ledger")["dependents"] == []


# ---------------------------------------------------------------- hostile input


def test_hostile_text_round_trips_exactly_as_json(client: TestClient) -> None:
    hostile: Json = {
        "title": '"><img src=x onerror=alert(1)>',
        "description": "<script>alert(1)</script>\n'; DROP TABLE services; --\u2028&amp;",
        "annotations": {"note": "<b>{{ 7*7 }}</b>"},
        "custom": {"owner_note": "</script><script>alert(2)</script>"},
        "contacts": [{"role": "security", "person": "<svg onload=alert(3)>"}],
    }
    created = create_service(client, "payments-api", OWNER, **hostile)

    response = client.get(f"{API}/payments-api")

    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert body == created
    assert body["title"] == hostile["title"]
    assert body["description"] == hostile["description"]
    assert body["annotations"] == hostile["annotations"]
    assert body["custom"] == hostile["custom"]
    assert body["contacts"] == [{"role": "security", "ref": "<svg onload=alert(3)>", "person": None}]
    listed = client.get(API, params={"q": "<script>"}).json()
    assert [item["description"] for item in listed["items"]] == [hostile["description"]]
