"""Search, whois and the schemas: /api/v1/search, /api/v1/whois/{name}, the descriptor JSON Schema and
the OpenAPI document.

Every test starts from an empty database (see conftest.py) and builds its organisation through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from quarterdeck.app import create_app
from quarterdeck.catalog.api import public_router, router
from quarterdeck.config import Settings
from tests.helpers import Json, error_of, posted, problem


def build_org(client: TestClient) -> None:
    """Two teams, three people, three services and a system."""
    posted(
        client,
        "/api/v1/teams",
        {
            "slug": "payments-team",
            "name": "Payments",
            "email": "payments@example.com",
            "chat": "#payments",
            "members": [{"person": "bob@example.com"}, {"person": "ada", "role": "lead"}],
        },
    )
    posted(client, "/api/v1/teams", {"slug": "shop-team", "name": "Shop", "chat": "#shop"})
    posted(
        client,
        "/api/v1/people",
        {"email": "ada@example.com", "name": "Ada Lovelace", "chat": "@ada", "title": "Staff Engineer"},
    )
    posted(client, "/api/v1/people", {"email": "bob@example.com", "name": "Bob Stone"})
    posted(client, "/api/v1/people", {"email": "cy@example.com", "name": "Cy Young", "teams": ["shop-team"]})
    posted(
        client,
        "/api/v1/services",
        {
            "slug": "payments-api",
            "title": "Payments API",
            "description": "Takes card payments.",
            "owner": "payments-team",
            "tier": 1,
            "system": "payments",
            "contacts": [
                {"role": "tech-lead", "person": "ada@example.com"},
                {"role": "product-manager", "person": "bob"},
            ],
        },
    )
    posted(
        client,
        "/api/v1/services",
        {
            "slug": "api-payments",
            "title": "API Payments",
            "description": "The payments api for partners: payments api, payments api, payments api.",
            "owner": "payments-team",
            "tier": 2,
        },
    )
    posted(
        client,
        "/api/v1/services",
        {
            "slug": "checkout",
            "title": "Checkout",
            "description": "Basket and checkout pages.",
            "owner": "shop-team",
            "contacts": [{"role": "tech-lead", "person": "cy"}],
        },
    )
    posted(client, "/api/v1/systems", {"slug": "payments", "title": "Payments", "owner": "payments-team"})


def search(client: TestClient, **params: Any) -> list[Json]:
    response = client.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    hits: list[Json] = response.json()
    return hits


def found(hits: list[Json]) -> list[tuple[str, str]]:
    return [(hit["type"], hit["slug"]) for hit in hits]


def whois(client: TestClient, name: str) -> Json:
    response = client.get(f"/api/v1/whois/{name}")
    assert response.status_code == 200, response.text
    answer: Json = response.json()
    return answer


ADA = {
    "slug": "ada",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "chat_handle": "@ada",
    "title": "Staff Engineer",
    "url": "/people/ada",
}
BOB = {
    "slug": "bob",
    "name": "Bob Stone",
    "email": "bob@example.com",
    "chat_handle": None,
    "title": None,
    "url": "/people/bob",
}
PAYMENTS_TEAM = {
    "slug": "payments-team",
    "name": "Payments",
    "email": "payments@example.com",
    "chat_channel": "#payments",
    "url": "/teams/payments-team",
}


# ---------------------------------------------------------------- search


def test_search_finds_by_prefix_and_ranks_an_exact_slug_first(client: TestClient) -> None:
    build_org(client)

    prefix = search(client, q="paym")
    exact = search(client, q="payments-api")

    assert sorted(found(prefix)) == [
        ("service", "api-payments"),
        ("service", "payments-api"),
        ("system", "payments"),
        ("team", "payments-team"),
    ]
    assert {hit["matched_by"] for hit in prefix} == {"text"}
    assert next(hit for hit in prefix if hit["slug"] == "payments-api") == {
        "type": "service",
        "slug": "payments-api",
        "name": "Payments API",
        "summary": "Takes card payments.",
        "url": "/services/payments-api",
        "matched_by": "text",
    }
    # "api-payments" matches the words more often, but "payments-api" is the slug asked for.
    assert found(exact)[0] == ("service", "payments-api")
    assert found(search(client, q="Payments API"))[0] == ("service", "payments-api")
    assert found(search(client, q="ada lovelace")) == [("person", "ada")]
    assert found(search(client, q="paym", limit=1)) == [found(prefix)[0]]


def test_search_tolerates_typos(client: TestClient) -> None:
    build_org(client)

    hits = {typo: search(client, q=typo) for typo in ["paymnets", "chekout"]}

    assert {typo: sorted(found(typo_hits)) for typo, typo_hits in hits.items()} == {
        "paymnets": [
            ("service", "api-payments"),
            ("service", "payments-api"),
            ("system", "payments"),
            ("team", "payments-team"),
        ],
        "chekout": [("service", "checkout")],
    }
    assert {typo: {hit["matched_by"] for hit in typo_hits} for typo, typo_hits in hits.items()} == {
        "paymnets": {"fuzzy"},
        "chekout": {"fuzzy"},
    }
    assert sorted(found(search(client, q="paymnets", type="service"))) == [
        ("service", "api-payments"),
        ("service", "payments-api"),
    ]


def test_search_type_filter_bad_parameters_and_freshness(client: TestClient) -> None:
    build_org(client)

    by_type = {
        kind: found(search(client, q="payments", type=kind))
        for kind in ["service", "team", "person", "system"]
    }

    assert {kind: sorted(hits) for kind, hits in by_type.items()} == {
        "service": [("service", "api-payments"), ("service", "payments-api")],
        "team": [("team", "payments-team")],
        "person": [],
        "system": [("system", "payments")],
    }
    assert search(client, q="   ") == []
    assert search(client, q="zzqqxx") == []
    bad = {
        "no q": {},
        "empty q": {"q": ""},
        "long q": {"q": "x" * 201},
        "limit 0": {"q": "payments", "limit": 0},
        "limit 101": {"q": "payments", "limit": 101},
        "bad type": {"q": "payments", "type": "banana"},
    }
    answers = {name: client.get("/api/v1/search", params=params) for name, params in bad.items()}
    assert {name: problem(response) for name, response in answers.items()} == {
        "no q": (422, "request.invalid", ["q"]),
        "empty q": (422, "request.invalid", ["q"]),
        "long q": (422, "request.invalid", ["q"]),
        "limit 0": (422, "request.invalid", ["limit"]),
        "limit 101": (422, "request.invalid", ["limit"]),
        "bad type": (422, "search.bad_type", []),
    }
    assert (
        answers["bad type"].json()["error"]["message"] == "type must be one of service, team, person, system"
    )

    # The index follows writes.
    assert client.patch("/api/v1/services/checkout", json={"title": "Basket"}).status_code == 200
    assert client.delete("/api/v1/teams/shop-team").status_code == 204
    assert [(hit["slug"], hit["name"]) for hit in search(client, q="basket", type="service")] == [
        ("checkout", "Basket")
    ]
    assert search(client, q="shop", type="team") == []


# ---------------------------------------------------------------- whois


def test_whois_a_service_names_its_team_contacts_channels_and_emails(client: TestClient) -> None:
    build_org(client)

    answer = whois(client, "Payments-API")

    assert answer == {
        "query": "Payments-API",
        "type": "service",
        "slug": "payments-api",
        "name": "Payments API",
        "url": "/services/payments-api",
        "answer": "Payments API is owned by Payments; ask Ada Lovelace in #payments",
        "owner": PAYMENTS_TEAM,
        "contacts": [
            {"role": "tech-lead", "ref": "ada@example.com", "person": ADA},
            {"role": "product-manager", "ref": "bob", "person": BOB},
        ],
        "team_members": [
            {"role": "lead", "ref": "ada", "person": ADA},
            {"role": "member", "ref": "bob@example.com", "person": BOB},
        ],
        "channels": ["#payments"],
        "emails": ["payments@example.com"],
        "teams": [],
        "services": [],
    }

    posted(client, "/api/v1/services", {"slug": "ledger", "title": "Ledger", "owner": "ghost-team"})
    orphan = whois(client, "ledger")
    assert (
        orphan["type"],
        orphan["owner"],
        orphan["channels"],
        orphan["emails"],
        orphan["team_members"],
    ) == (
        "service",
        None,
        [],
        [],
        [],
    )
    assert orphan["answer"] == "Ledger is owned by ghost-team; ask ghost-team"


def test_whois_a_team_lists_members_lead_first(client: TestClient) -> None:
    build_org(client)

    answer = whois(client, "payments-team")

    assert {key: answer[key] for key in ("type", "slug", "name", "url", "answer", "owner")} == {
        "type": "team",
        "slug": "payments-team",
        "name": "Payments",
        "url": "/teams/payments-team",
        "answer": "Payments: lead Ada Lovelace, channel #payments",
        "owner": PAYMENTS_TEAM,
    }
    assert answer["team_members"] == [
        {"role": "lead", "ref": "ada", "person": ADA},
        {"role": "member", "ref": "bob@example.com", "person": BOB},
    ]
    assert (answer["channels"], answer["emails"]) == (["#payments"], ["payments@example.com"])
    assert [service["slug"] for service in answer["services"]] == ["payments-api", "api-payments"]  # by tier


def test_whois_a_person_by_email_and_by_handle_lists_their_teams(client: TestClient) -> None:
    build_org(client)

    by_email = whois(client, "ada@example.com")
    by_handle = whois(client, "ada")
    by_name = whois(client, "Ada Lovelace")
    member_by_declaration = whois(client, "cy")

    assert by_email == {
        "query": "ada@example.com",
        "type": "person",
        "slug": "ada",
        "name": "Ada Lovelace",
        "url": "/people/ada",
        "answer": "Ada Lovelace (Staff Engineer), ada@example.com, @ada",
        "owner": None,
        "contacts": [],
        "team_members": [],
        "channels": ["@ada"],
        "emails": ["ada@example.com"],
        "teams": [PAYMENTS_TEAM],
        "services": by_email["services"],
    }
    assert [service["slug"] for service in by_email["services"]] == ["payments-api", "api-payments"]
    assert by_handle == {**by_email, "query": "ada"}
    assert by_name == {**by_email, "query": "Ada Lovelace"}
    assert [team["slug"] for team in member_by_declaration["teams"]] == ["shop-team"]
    assert [service["slug"] for service in member_by_declaration["services"]] == ["checkout"]


def test_whois_resolves_a_misspelt_name_through_search(client: TestClient) -> None:
    build_org(client)

    checkout = whois(client, "chekout")
    lovelace = whois(client, "Ada Lovelase")

    assert (checkout["query"], checkout["type"], checkout["slug"]) == ("chekout", "service", "checkout")
    assert checkout["answer"] == "Checkout is owned by Shop; ask Cy Young in #shop"
    assert (lovelace["type"], lovelace["slug"]) == ("person", "ada")


def test_a_misspelt_slug_finds_that_service_before_one_that_uses_the_same_words(client: TestClient) -> None:
    build_org(client)  # "payments-api", and "api-payments" whose description says "payments api" often

    hits = search(client, q="paymnets-api", type="service")
    misspelt = whois(client, "paymnets-api")

    # One transposed pair of letters away from "payments-api"; "api-payments" only shares its words.
    assert found(hits)[0] == ("service", "payments-api")
    assert (misspelt["type"], misspelt["slug"], misspelt["owner"]) == (
        "service",
        "payments-api",
        PAYMENTS_TEAM,
    )


def test_whois_an_unknown_name_answers_404(client: TestClient) -> None:
    build_org(client)

    response = client.get("/api/v1/whois/zzqqxx")

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "whois.not_found",
            "message": "nothing in the catalog is called 'zzqqxx'",
            "details": {"suggestions": []},
        }
    }
    blank = client.get("/api/v1/whois/%20")
    assert problem(blank) == (422, "whois.empty", [])


def test_whois_a_name_search_cannot_place_suggests_the_nearest_names(client: TestClient) -> None:
    build_org(client)

    # "apo" is too short for search to correct, and no word starts with it: search finds nothing.
    response = client.get("/api/v1/whois/checkout-apo")

    error = error_of(response, 404, "whois.not_found")
    assert error == {
        "code": "whois.not_found",
        "message": "nothing in the catalog is called 'checkout-apo'; did you mean 'checkout'?",
        "details": {"suggestions": ["checkout"]},
    }


def test_whois_does_not_give_up_when_the_best_search_hit_is_a_system(client: TestClient) -> None:
    posted(client, "/api/v1/teams", {"slug": "money-team", "name": "Money", "chat": "#money"})
    posted(client, "/api/v1/systems", {"slug": "billing", "title": "Billing", "owner": "money-team"})
    posted(client, "/api/v1/services", {"slug": "billing-api", "title": "Billing API", "owner": "money-team"})

    response = client.get("/api/v1/whois/billing")

    # "billing" is the system's exact slug, so the system ranks first in search; whois answers for services,
    # teams and people, and both the Billing API and the system's owner lead to the Money team. It must not
    # answer "nothing in the catalog is called 'billing'" while listing "billing" among its suggestions.
    assert response.status_code == 200, response.text
    assert response.json()["owner"]["slug"] == "money-team"
    assert response.json()["channels"] == ["#money"]


# ---------------------------------------------------------------- schemas


@pytest.fixture
def bare_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on an empty, unmigrated SQLite file: enough for routes that never touch the database."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/unused.db", git_cache_dir=tmp_path / "git"))
    with TestClient(app) as test_client:
        yield test_client
    app.state.runtime.close()


def test_descriptor_schema_is_a_json_schema_of_the_four_kinds(bare_client: TestClient) -> None:
    response = bare_client.get("/api/v1/schema/descriptor.json")

    assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    definitions = {f"#/$defs/{kind}Descriptor": kind for kind in ["Service", "Team", "Person", "System"]}
    assert sorted(choice["$ref"] for choice in schema["oneOf"]) == sorted(definitions)
    assert schema["discriminator"] == {
        "propertyName": "kind",
        "mapping": {kind: ref for ref, kind in definitions.items()},
    }
    for ref, kind in definitions.items():
        definition = schema["$defs"][ref.rsplit("/", 1)[1]]
        assert definition["properties"]["kind"]["const"] == kind
        assert definition["properties"]["apiVersion"]["const"] == "quarterdeck/v1"
        assert definition["additionalProperties"] is False
        assert {"apiVersion", "kind"} <= set(definition["required"])
    service = schema["$defs"]["ServiceDescriptor"]
    assert sorted(service["required"]) == ["apiVersion", "kind", "owner", "slug"]
    assert {"tier", "contacts", "depends_on", "links", "tags", "custom"} <= set(service["properties"])
    assert sorted(schema["$defs"]["PersonDescriptor"]["required"]) == ["apiVersion", "email", "kind", "name"]


def test_openapi_lists_every_api_route(bare_client: TestClient) -> None:
    spec = bare_client.get("/api/v1/openapi.json").json()

    api_paths = {
        path: sorted(operations) for path, operations in spec["paths"].items() if path.startswith("/api/v1")
    }

    expected = {
        "/api/v1/services": ["get", "post"],
        "/api/v1/services/{slug}": ["delete", "get", "patch", "put"],
        "/api/v1/teams": ["get", "post"],
        "/api/v1/teams/{key}": ["delete", "get", "patch", "put"],
        "/api/v1/people": ["get", "post"],
        "/api/v1/people/{key}": ["delete", "get", "patch", "put"],
        "/api/v1/systems": ["get", "post"],
        "/api/v1/systems/{key}": ["delete", "get", "patch", "put"],
        "/api/v1/search": ["get"],
        "/api/v1/whois/{name}": ["get"],
        "/api/v1/schema/descriptor.json": ["get"],
    }
    access_paths = {
        "/api/v1/me": ["get"],
        "/api/v1/tokens": ["get", "post"],
        "/api/v1/tokens/{token_id}": ["delete"],
        "/api/v1/users": ["get", "post"],
        "/api/v1/users/{key}": ["patch"],
        "/api/v1/users/{key}/teams/{team}": ["delete", "put"],
        "/api/v1/audit": ["get"],
        "/api/v1/audit/export": ["get"],
        "/api/v1/audit/verify": ["get"],
    }
    assert {
        p: m for p, m in api_paths.items() if p in expected or p in access_paths
    } == expected | access_paths
    routed = {
        (route.path.replace(":path}", "}"), method.lower())
        for route in [*router.routes, *public_router.routes]
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert routed == {(path, method) for path, methods in expected.items() for method in methods}
    created = spec["paths"]["/api/v1/services"]["post"]
    assert "201" in created["responses"]
    assert created["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ServiceFields"
    }
