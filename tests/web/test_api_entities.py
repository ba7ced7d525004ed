"""The teams, people and systems APIs: one CRUD and bad-input suite run over the three, then each one's own
references (members, parents, teams of a person, a system's owner, domain and services).

Every test starts from an empty database (see conftest.py) and builds what it needs through the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.helpers import Json, error_of, posted, problem, team_brief


@dataclass(frozen=True)
class Entity:
    """What the shared suite needs to know about one entity type's API."""

    plural: str
    key_field: str  # the body field that names the entity in its URL ("slug", or a person's "handle")
    first: Json  # a full create body
    second: Json  # another one: its key sorts after the first's, its name contains `q` and not its key
    q: str
    changed: tuple[str, str, str]  # (body field, new value, the answer's field showing it)
    not_found: str  # the error code of an unknown key
    wrong: dict[str, tuple[Json, list[str]]]  # bad overrides of `first` and the fields they name

    @property
    def url(self) -> str:
        return f"/api/v1/{self.plural}"

    @property
    def key(self) -> str:
        return str(self.first[self.key_field])

    @property
    def item(self) -> str:
        return f"{self.url}/{self.key}"


TEAM = Entity(
    plural="teams",
    key_field="slug",
    first={
        "slug": "payments-team",
        "name": "Payments",
        "description": "Card and wallet payments.",
        "email": "payments@example.com",
        "chat": "#payments",
        "links": [{"kind": "roadmap", "url": "https://roadmap.example.com/payments"}],
        "annotations": {"example.com/cost-center": "4100"},
    },
    second={"slug": "shop-team", "name": "Shop Floor"},
    q="FLOOR",
    changed=("name", "Payments & Wallets", "name"),
    not_found="catalog.team_not_found",
    wrong={
        "name a number": ({"name": 5}, ["name"]),
        "name blank": ({"name": "  "}, ["name"]),
        "e-mail without @": ({"email": "payments.example.com"}, ["email"]),
        "members not a list": ({"members": "ada"}, ["members"]),
        "member without person": ({"members": [{"role": "lead"}]}, ["members.0.person"]),
        "parent not a slug": ({"parent": "Commerce Org"}, ["parent"]),
    },
)
PERSON = Entity(
    plural="people",
    key_field="handle",
    first={
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "handle": "ada",
        "chat": "@ada",
        "title": "Staff Engineer",
        "links": [{"kind": "docs", "url": "https://people.example.com/ada", "title": "Profile"}],
    },
    second={"email": "grace@example.com", "name": "Grace Hopper", "handle": "amazing-grace"},
    q="hopper",
    changed=("title", "Principal Engineer", "title"),
    not_found="catalog.person_not_found",
    wrong={
        "e-mail without @": ({"email": "ada"}, ["email"]),
        "name missing": ({"name": None}, ["name"]),
        "handle a number": ({"handle": 5}, ["handle"]),
        "teams not a list": ({"teams": "payments-team"}, ["teams"]),
        "team not a slug": ({"teams": ["Payments Team"]}, ["teams.0"]),
        "neither e-mail nor handle": ({"email": None, "handle": None}, ["body"]),
    },
)
SYSTEM = Entity(
    plural="systems",
    key_field="slug",
    first={
        "slug": "payments",
        "title": "Payments",
        "description": "Everything that moves money.",
        "owner": "payments-team",
        "domain": "commerce",
    },
    second={"slug": "shop", "title": "Storefront"},
    q="front",
    changed=("title", "Money", "title"),
    not_found="catalog.system_not_found",
    wrong={
        "title a list": ({"title": ["Payments"]}, ["title"]),
        "owner not a slug": ({"owner": "Payments Team"}, ["owner"]),
        "link without url": ({"links": [{"kind": "docs"}]}, ["links.0.url"]),
        "annotations not a mapping": ({"annotations": ["a"]}, ["annotations"]),
    },
)
ENTITIES = [TEAM, PERSON, SYSTEM]
each_entity = pytest.mark.parametrize("entity", ENTITIES, ids=[e.plural for e in ENTITIES])


# ---------------------------------------------------------------- helpers


def get(client: TestClient, url: str) -> Json:
    response = client.get(url)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def create(client: TestClient, entity: Entity, body: Json | None = None) -> Json:
    return posted(client, entity.url, entity.first if body is None else body)


def keys_of(response: Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["slug"] for item in response.json()["items"]]


def person_brief(
    handle: str, name: str, email: str, chat: str | None = None, title: str | None = None
) -> Json:
    return {
        "slug": handle,
        "name": name,
        "email": email,
        "chat_handle": chat,
        "title": title,
        "url": f"/people/{handle}",
    }


UI_SOURCE = {"source": "ui", "file": None, "line": None, "detached_from": None, "descriptor": None}


# ---------------------------------------------------------------- the shared suite


@each_entity
def test_create_answers_201_with_location_and_etag_then_get_honours_if_none_match(
    client: TestClient, entity: Entity
) -> None:
    response = client.post(entity.url, json=entity.first)

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    etag = response.headers["etag"]
    assert re.fullmatch(r'"[^"]+"', etag)
    assert body["etag"] == etag
    assert response.headers["location"] == entity.item
    assert (body["slug"], body["version"], body["source"], body["import_errors"]) == (
        entity.key,
        1,
        UI_SOURCE,
        [],
    )

    followed = client.get(response.headers["location"])
    cached = client.get(entity.item, headers={"If-None-Match": etag})
    other = client.get(entity.item, headers={"If-None-Match": '"something-else"'})
    upper = client.get(f"{entity.url}/{entity.key.upper()}")

    assert (followed.status_code, followed.headers["etag"], followed.json()) == (200, etag, body)
    assert (cached.status_code, cached.headers["etag"], cached.content) == (304, etag, b"")
    assert (other.status_code, other.json()) == (200, body)
    assert (upper.status_code, upper.json()) == (200, body)


@each_entity
def test_list_paginates_in_key_order_and_filters_by_text(client: TestClient, entity: Entity) -> None:
    second = create(client, entity, entity.second)
    first = create(client, entity)

    page_one = client.get(f"{entity.url}?per_page=1")
    page_two = client.get(f"{entity.url}?per_page=1&page=2")
    page_three = client.get(f"{entity.url}?per_page=1&page=3")
    everything = client.get(entity.url)
    found = client.get(entity.url, params={"q": entity.q})
    by_key = client.get(entity.url, params={"q": second["slug"]})  # in no name or title
    nothing = client.get(entity.url, params={"q": "zzz"})

    assert page_one.json() == {"items": [first], "total": 2, "page": 1, "per_page": 1}
    assert page_two.json() == {"items": [second], "total": 2, "page": 2, "per_page": 1}
    assert page_three.json() == {"items": [], "total": 2, "page": 3, "per_page": 1}
    assert everything.json() == {"items": [first, second], "total": 2, "page": 1, "per_page": 50}
    assert (keys_of(found), found.json()["total"]) == ([second["slug"]], 1)
    assert keys_of(by_key) == [second["slug"]]
    assert nothing.json() == {"items": [], "total": 0, "page": 1, "per_page": 50}


@each_entity
def test_put_and_patch_honour_if_match(client: TestClient, entity: Entity) -> None:
    field, value, shown_as = entity.changed
    first = create(client, entity)
    versions = iter(range(2, 10))

    for method in ["PUT", "PATCH"]:

        def body(new: str, method: str = method) -> Json:
            return {**entity.first, field: new} if method == "PUT" else {field: new}

        before = get(client, entity.item)
        matching = client.request(
            method, entity.item, json=body(f"{value} ({method})"), headers={"If-Match": before["etag"]}
        )
        assert matching.status_code == 200, matching.text
        after = matching.json()
        version = next(versions)
        assert after == {**first, shown_as: f"{value} ({method})", "version": version, "etag": after["etag"]}
        assert matching.headers["etag"] == after["etag"] != before["etag"]

        stale = client.request(
            method, entity.item, json=body("Lost update"), headers={"If-Match": before["etag"]}
        )
        assert after["etag"] in error_of(stale, 412, "catalog.stale_etag")["message"]
        assert get(client, entity.item) == after

        unconditional = client.request(method, entity.item, json=body(f"Third ({method})"))
        assert unconditional.status_code == 200, unconditional.text
        assert (unconditional.json()[shown_as], unconditional.json()["version"]) == (
            f"Third ({method})",
            next(versions),
        )
        assert get(client, entity.item) == unconditional.json()


@each_entity
def test_key_cannot_be_changed(client: TestClient, entity: Entity) -> None:
    created = create(client, entity)
    attempts = {
        "PUT": {**entity.first, entity.key_field: "renamed"},
        "PATCH": {entity.key_field: "renamed"},
    }

    answers = {method: client.request(method, entity.item, json=body) for method, body in attempts.items()}

    assert {method: problem(response) for method, response in answers.items()} == {
        method: (422, "catalog.slug_immutable", [entity.key_field]) for method in attempts
    }
    assert get(client, entity.item) == created
    error_of(client.get(f"{entity.url}/renamed"), 404, entity.not_found)


@each_entity
def test_delete_with_a_stale_if_match_leaves_it_and_a_matching_one_deletes_it(
    client: TestClient, entity: Entity
) -> None:
    first = create(client, entity)
    second = client.patch(entity.item, json={entity.changed[0]: entity.changed[1]}).json()

    stale = client.delete(entity.item, headers={"If-Match": first["etag"]})

    assert second["etag"] in error_of(stale, 412, "catalog.stale_etag")["message"]
    assert get(client, entity.item) == second

    deleted = client.delete(entity.item, headers={"If-Match": second["etag"]})

    assert (deleted.status_code, deleted.content) == (204, b"")
    error_of(client.get(entity.item), 404, entity.not_found)
    error_of(client.delete(entity.item), 404, entity.not_found)
    assert client.get(entity.url).json()["total"] == 0
    assert client.get("/api/v1/search", params={"q": entity.key}).json() == []

    again = create(client, entity)
    assert (again["version"], again[entity.changed[2]]) == (1, entity.first.get(entity.changed[0]))
    unconditional = client.delete(entity.item)
    assert unconditional.status_code == 204
    error_of(client.get(entity.item), 404, entity.not_found)


@each_entity
def test_bad_requests_are_refused_and_change_nothing(client: TestClient, entity: Entity) -> None:
    created = create(client, entity)
    broken = b'{"name": '
    json_headers = {"Content-Type": "application/json"}
    new = {**entity.first, entity.key_field: "newcomer"}
    first_wrong, first_wrong_fields = next(iter(entity.wrong.values()))
    unknown = f"{entity.url}/nobody"

    answers = {
        "POST malformed": client.post(entity.url, content=broken, headers=json_headers),
        "PUT malformed": client.put(entity.item, content=broken, headers=json_headers),
        "PATCH malformed": client.patch(entity.item, content=broken, headers=json_headers),
        "POST unknown field": client.post(entity.url, json={**new, "colour": "red"}),
        "PUT unknown field": client.put(entity.item, json={**entity.first, "colour": "red"}),
        "PATCH unknown field": client.patch(entity.item, json={"colour": "red"}),
        "POST bad key": client.post(entity.url, json={**new, entity.key_field: "Bad Slug"}),
        "POST a list": client.post(entity.url, json=[new]),
        "POST duplicate": client.post(entity.url, json=entity.first),
        **{
            f"POST {name}": client.post(entity.url, json={**new, **bad})
            for name, (bad, _) in entity.wrong.items()
        },
        "PUT wrong type": client.put(entity.item, json={**entity.first, **first_wrong}),
        "PATCH wrong type": client.patch(entity.item, json=first_wrong),
        "GET unknown": client.get(unknown),
        "PUT unknown": client.put(unknown, json={**entity.first, entity.key_field: "nobody"}),
        "PATCH unknown": client.patch(unknown, json={}),
        "DELETE unknown": client.delete(unknown),
        "per_page=0": client.get(f"{entity.url}?per_page=0"),
        "per_page=501": client.get(f"{entity.url}?per_page=501"),
        "page=0": client.get(f"{entity.url}?page=0"),
        "q too long": client.get(entity.url, params={"q": "x" * 201}),
    }

    assert {name: problem(response) for name, response in answers.items()} == {
        "POST malformed": (400, "request.malformed_json", []),
        "PUT malformed": (400, "request.malformed_json", []),
        "PATCH malformed": (400, "request.malformed_json", []),
        "POST unknown field": (422, "request.invalid", ["colour"]),
        "PUT unknown field": (422, "request.invalid", ["colour"]),
        "PATCH unknown field": (422, "request.invalid", ["colour"]),
        "POST bad key": (422, "request.invalid", [entity.key_field]),
        "POST a list": (422, "request.invalid", ["body"]),
        "POST duplicate": (409, "catalog.duplicate", []),
        **{f"POST {name}": (422, "request.invalid", fields) for name, (_, fields) in entity.wrong.items()},
        "PUT wrong type": (422, "request.invalid", first_wrong_fields),
        "PATCH wrong type": (422, "request.invalid", first_wrong_fields),
        "GET unknown": (404, entity.not_found, []),
        "PUT unknown": (404, entity.not_found, []),
        "PATCH unknown": (404, entity.not_found, []),
        "DELETE unknown": (404, entity.not_found, []),
        "per_page=0": (422, "request.invalid", ["per_page"]),
        "per_page=501": (422, "request.invalid", ["per_page"]),
        "page=0": (422, "request.invalid", ["page"]),
        "q too long": (422, "request.invalid", ["q"]),
    }
    assert answers["POST unknown field"].json()["error"]["details"] == [
        {"field": "colour", "in": "body", "message": "unknown field 'colour'"}
    ]
    assert answers["POST duplicate"].json()["error"]["details"] == {"slug": entity.key}
    assert answers["GET unknown"].json()["error"]["message"].endswith("'nobody' is not in the catalog")
    assert client.get(entity.url).json()["total"] == 1
    assert get(client, entity.item) == created


@each_entity
def test_a_key_that_does_not_match_is_told_what_it_must_be(client: TestClient, entity: Entity) -> None:
    response = client.post(entity.url, json={**entity.first, entity.key_field: "Bad [Slug]"})

    # A sentence, not "String should match pattern '^(?:[a-z0-9]+(?:-[a-z0-9]+)*/)?...'"
    must = (
        "must be lowercase letters and digits with '-', '_' or '.' between them (like checkout-api), "
        "optionally after a namespace and '/' (like shop/checkout-api)"
    )
    error = error_of(response, 422, "request.invalid")
    assert error["message"] == f"{entity.key_field}: {must}"
    assert error["details"] == [{"field": entity.key_field, "in": "body", "message": must}]


# ---------------------------------------------------------------- teams


def test_team_resolves_parent_children_members_and_services(client: TestClient) -> None:
    posted(client, "/api/v1/teams", {"slug": "commerce", "name": "Commerce"})
    posted(client, "/api/v1/people", {"email": "ada@example.com", "name": "Ada Lovelace", "handle": "ada"})
    posted(
        client, "/api/v1/people", {"email": "cy@example.com", "name": "Cy Young", "teams": ["payments-team"]}
    )
    posted(
        client,
        "/api/v1/teams",
        {
            "slug": "payments-team",
            "name": "Payments",
            "email": "payments@example.com",
            "chat": "#payments",
            "parent": "commerce",
            "members": [
                {"person": "zed@example.com"},
                {"person": "ADA@example.com", "role": "lead"},
                {"person": "bo", "role": "manager"},
            ],
        },
    )
    posted(client, "/api/v1/teams", {"slug": "orphans", "name": "Orphans", "parent": "ghost-org"})
    posted(client, "/api/v1/services", {"slug": "payments-api", "owner": "payments-team", "tier": 1})

    payments = get(client, "/api/v1/teams/payments-team")
    commerce = get(client, "/api/v1/teams/commerce")
    orphans = get(client, "/api/v1/teams/orphans")

    assert payments["parent"] == {
        "type": "team",
        "ref": "commerce",
        "slug": "commerce",
        "name": "Commerce",
        "url": "/teams/commerce",
        "exists": True,
    }
    assert orphans["parent"] == {
        "type": "team",
        "ref": "ghost-org",
        "slug": "ghost-org",
        "name": None,
        "url": None,
        "exists": False,
    }
    assert (commerce["parent"], commerce["children"]) == (
        None,
        [team_brief("payments-team", "Payments", "payments@example.com", "#payments")],
    )
    # Lead first, then managers, then members by name; people not in the catalog keep their reference.
    assert payments["members"] == [
        {
            "role": "lead",
            "ref": "ada@example.com",
            "person": person_brief("ada", "Ada Lovelace", "ada@example.com"),
        },
        {"role": "manager", "ref": "bo", "person": None},
        {"role": "member", "ref": "cy", "person": person_brief("cy", "Cy Young", "cy@example.com")},
        {"role": "member", "ref": "zed@example.com", "person": None},
    ]
    assert [service["slug"] for service in payments["services"]] == ["payments-api"]
    assert payments["services"][0]["url"] == "/services/payments-api"


def test_team_patch_keeps_members_and_put_replaces_them(client: TestClient) -> None:
    members = [{"person": "ada", "role": "lead"}, {"person": "bob", "role": "member"}]
    created = posted(
        client, "/api/v1/teams", {"slug": "payments-team", "name": "Payments", "members": members}
    )
    assert [(m["role"], m["ref"]) for m in created["members"]] == [("lead", "ada"), ("member", "bob")]

    patched = client.patch("/api/v1/teams/payments-team", json={"description": "Payments."})
    assert patched.status_code == 200, patched.text
    assert patched.json()["members"] == created["members"]

    replaced = client.put("/api/v1/teams/payments-team", json={"slug": "payments-team", "name": "Payments"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["members"] == []
    assert get(client, "/api/v1/teams/payments-team")["members"] == []


# ---------------------------------------------------------------- people


def test_person_is_found_by_handle_email_and_id(client: TestClient) -> None:
    created = posted(client, "/api/v1/people", {"email": "Ada.Lovelace@Example.com", "name": "Ada Lovelace"})

    assert (created["slug"], created["email"]) == ("ada.lovelace", "ada.lovelace@example.com")
    for key in ["ada.lovelace", "ada.lovelace@example.com", "ADA.Lovelace@EXAMPLE.com", "1"]:
        assert (key, get(client, f"/api/v1/people/{key}")) == (key, created)
    etag = created["etag"]
    assert (
        client.get("/api/v1/people/ada.lovelace@example.com", headers={"If-None-Match": etag}).status_code
        == 304
    )
    patched = client.patch(
        "/api/v1/people/ada.lovelace@example.com", json={"chat": "@ada"}, headers={"If-Match": etag}
    )
    assert (patched.status_code, patched.json()["chat_handle"]) == (200, "@ada")
    assert client.delete("/api/v1/people/ada.lovelace@example.com").status_code == 204
    assert client.get("/api/v1/people").json()["total"] == 0

    # Someone imported from Backstage may have a handle and no e-mail; the API takes them too.
    no_email = posted(client, "/api/v1/people", {"name": "Grace Hopper", "handle": "grace"})
    assert (no_email["slug"], no_email["email"], get(client, "/api/v1/people/grace")) == (
        "grace",
        None,
        no_email,
    )


def test_person_shows_teams_and_the_services_they_are_a_contact_for(client: TestClient) -> None:
    posted(client, "/api/v1/teams", {"slug": "payments-team", "name": "Payments", "chat": "#payments"})
    posted(
        client, "/api/v1/teams", {"slug": "ops", "name": "Ops", "members": [{"person": "ada@example.com"}]}
    )
    posted(
        client,
        "/api/v1/services",
        {
            "slug": "payments-api",
            "title": "Payments API",
            "owner": "payments-team",
            "contacts": [{"role": "tech-lead", "person": "ada"}],
        },
    )

    person = posted(
        client,
        "/api/v1/people",
        {"email": "ada@example.com", "name": "Ada Lovelace", "teams": ["payments-team", "ghost-team"]},
    )

    assert person["teams"] == [
        team_brief("ops", "Ops"),
        team_brief("payments-team", "Payments", chat="#payments"),
    ]
    assert person["contact_for"] == [
        {
            "role": "tech-lead",
            "slug": "payments-api",
            "title": "Payments API",
            "url": "/services/payments-api",
        }
    ]
    assert get(client, "/api/v1/people/ada") == person


def test_person_patch_keeps_the_teams_they_belong_to(client: TestClient) -> None:
    posted(client, "/api/v1/teams", {"slug": "payments-team", "name": "Payments"})
    created = posted(
        client,
        "/api/v1/people",
        {"email": "ada@example.com", "name": "Ada Lovelace", "teams": ["payments-team"]},
    )
    assert created["teams"] == [team_brief("payments-team", "Payments")]

    patched = client.patch("/api/v1/people/ada", json={"title": "Staff Engineer"})

    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "Staff Engineer"
    # PATCH changes only what it names: Ada is still in the team, seen from either side.
    assert patched.json()["teams"] == created["teams"]
    assert [m["ref"] for m in get(client, "/api/v1/teams/payments-team")["members"]] == ["ada"]


def test_person_whose_handle_is_all_digits_can_be_created_listed_and_read(client: TestClient) -> None:
    ada = posted(client, "/api/v1/people", {"email": "ada@example.com", "name": "Ada Lovelace"})
    # The handle defaults to the e-mail's local part, and "1" is a valid slug; Ada's id is 1.
    response = client.post("/api/v1/people", json={"email": "1@example.com", "name": "Numbered Person"})

    assert response.status_code == 201, response.text
    numbered = response.json()
    assert (numbered["slug"], numbered["email"]) == ("1", "1@example.com")
    assert client.get("/api/v1/people").json()["items"] == [numbered, ada]
    assert get(client, "/api/v1/people/1") == numbered
    assert get(client, "/api/v1/people/ada") == ada


# ---------------------------------------------------------------- systems


def test_system_resolves_owner_domain_subsystems_and_services(client: TestClient) -> None:
    posted(client, "/api/v1/teams", {"slug": "payments-team", "name": "Payments"})
    posted(client, "/api/v1/systems", {"slug": "commerce", "title": "Commerce"})
    posted(client, "/api/v1/systems", SYSTEM.first)
    posted(client, "/api/v1/systems", {"slug": "loose", "owner": "ghost-team", "domain": "nowhere"})
    posted(
        client, "/api/v1/services", {"slug": "payments-api", "owner": "payments-team", "system": "payments"}
    )
    posted(client, "/api/v1/services", {"slug": "ledger", "owner": "payments-team", "system": "payments"})

    payments = get(client, "/api/v1/systems/payments")
    commerce = get(client, "/api/v1/systems/commerce")
    loose = get(client, "/api/v1/systems/loose")

    assert payments["owner"] == {
        "ref": "payments-team",
        "team": team_brief("payments-team", "Payments"),
        "person": None,
    }
    assert payments["domain"] == {
        "type": "system",
        "ref": "commerce",
        "slug": "commerce",
        "name": "Commerce",
        "url": "/systems/commerce",
        "exists": True,
    }
    assert [service["slug"] for service in payments["services"]] == ["ledger", "payments-api"]
    assert (payments["url"], payments["kind"], payments["systems"]) == ("/systems/payments", "system", [])
    assert commerce["systems"] == [
        {
            "type": "system",
            "ref": "payments",
            "slug": "payments",
            "name": "Payments",
            "url": "/systems/payments",
            "exists": True,
        }
    ]
    assert (commerce["owner"], commerce["domain"], commerce["services"]) == (None, None, [])
    assert (loose["title"], loose["owner"], loose["domain"]["exists"]) == (
        "loose",
        {"ref": "ghost-team", "team": None, "person": None},
        False,
    )


def test_a_person_whose_handle_is_not_ascii_gets_a_percent_encoded_location(client: TestClient) -> None:
    """Found by the OpenAPI fuzz run: the handle comes from the e-mail, and headers are latin-1."""
    response = client.post("/api/v1/people", json={"email": "jürgen.ø@corp.example", "name": "Jürgen"})

    assert response.status_code == 201, response.text
    handle = response.json()["slug"]
    assert response.headers["location"] == "/api/v1/people/" + quote(handle, safe="/")
    assert client.get(response.headers["location"]).json()["name"] == "Jürgen"
