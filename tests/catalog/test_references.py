"""Dangling references: a name the catalog does not have is a notice in the import report (file,
line, nearest name), `problems` in the API answer, an entry in the admins' list, and, with strict
references, an error that keeps the entity out. On both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.app import create_app
from quarterdeck.catalog import references, service
from quarterdeck.catalog.descriptors import Problem, ServiceDraft
from quarterdeck.catalog.importer import ImportReport, import_source
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.runtime import Runtime, running
from tests.conftest import make_token, make_user
from tests.helpers import bearer, create_service, create_team, error_of

TEAM = "apiVersion: quarterdeck/v1\nkind: Team\nslug: checkout\nname: Checkout\n"
CART = "apiVersion: quarterdeck/v1\nkind: Service\nslug: cart-service\nowner: checkout\n"
TYPOS = (
    "apiVersion: quarterdeck/v1\nkind: Service\nslug: checkout-api\nowner: chekout\n"
    "depends_on: [cart-servce]\n"
)
PERSON_ADA = "apiVersion: quarterdeck/v1\nkind: Person\nemail: ada@example.com\nhandle: ada\nname: Ada\n"
GOOD = TYPOS.replace("chekout", "checkout").replace("cart-servce", "cart-service")
OWNER_TYPO = "service checkout-api: owner 'chekout' is not in the catalog; did you mean 'checkout'?"
DEPENDENCY_TYPO = (
    "service checkout-api: dependency 'cart-servce' is not in the catalog; did you mean 'cart-service'?"
)


def write_source(root: Path, *docs: str) -> tuple[Path, int]:
    """A folder whose quarterdeck.yaml holds `docs`; and the line checkout-api's document starts on."""
    root.mkdir(parents=True, exist_ok=True)
    text = "---\n".join(docs)
    (root / "quarterdeck.yaml").write_text(text, encoding="utf-8")
    lines = text.splitlines()
    line = next((n for n, line in enumerate(lines, 1) if line == "slug: checkout-api"), 3) - 2
    return root, line


def load(sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, root: Path) -> ImportReport:
    return import_source(sessions, str(root), settings=settings, clock=clock)


def located(problems: list[Problem]) -> list[tuple[str, int | None, str]]:
    return [(p.file, p.line, p.message) for p in problems]


@pytest.fixture
def strict_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"strict_references": True})


@pytest.fixture
def strict_client(strict_settings: Settings, clock: FrozenClock, admin_token: str) -> Iterator[TestClient]:
    """An admin's client of a replica run with QD_STRICT_REFERENCES=true, on the test's database."""
    with (
        running(strict_settings, clock=clock) as runtime,
        TestClient(create_app(runtime=runtime), headers=bearer(admin_token)) as client,
    ):
        yield client


# ---------------------------------------------------------------- imports


def test_import_notes_each_dangling_reference_with_file_line_and_nearest_name(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    root, line = write_source(tmp_path / "src", TEAM, CART, TYPOS)

    report = load(sessions, settings, clock, root)

    assert report.errors == []
    assert report.created == 3
    assert located(report.notices) == [
        ("quarterdeck.yaml", line, OWNER_TYPO),
        ("quarterdeck.yaml", line, DEPENDENCY_TYPO),
    ]
    with sessions() as session:
        problems = service.service_view(session, "checkout-api").problems
    assert [(p.field, p.ref, p.target, p.message) for p in problems] == [
        ("owner", "chekout", "team", "owner 'chekout' is not in the catalog"),
        ("depends_on", "cart-servce", "service", "dependency 'cart-servce' is not in the catalog"),
    ]
    # an unchanged descriptor is not written again, nor checked: re-imports stay fast
    assert load(sessions, settings, clock, root).notices == []


def test_names_the_same_import_defines_anywhere_resolve(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    # checkout-api comes first in the file, the team and the service it names after it
    root, _line = write_source(tmp_path / "src", GOOD, CART, TEAM)

    report = load(sessions, settings, clock, root)

    assert (report.errors, report.notices, report.created) == ([], [], 3)
    with sessions() as session:
        assert service.service_view(session, "checkout-api").problems == []


def test_strict_references_make_them_errors_and_keep_the_entity_out(
    sessions: sessionmaker[Session], strict_settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    root, line = write_source(tmp_path / "src", TEAM, CART, TYPOS)

    report = load(sessions, strict_settings, clock, root)

    assert located(report.errors) == [
        ("quarterdeck.yaml", line, OWNER_TYPO),
        ("quarterdeck.yaml", line, DEPENDENCY_TYPO),
    ]
    assert report.notices == []
    assert (report.entities, report.created) == (2, 2)  # the rest of the source imports
    with sessions() as session:
        assert service.team_view(session, "checkout").services[0].slug == "cart-service"
        assert service.catalog_stats(session)["service"] == 1


def test_strict_references_keep_the_last_good_version_showing_the_error(
    sessions: sessionmaker[Session], strict_settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    root, line = write_source(tmp_path / "src", TEAM, CART, GOOD)
    assert load(sessions, strict_settings, clock, root).errors == []
    write_source(root, TEAM, CART, GOOD.replace("owner: checkout", "owner: chekout"))

    report = load(sessions, strict_settings, clock, root)

    assert located(report.errors) == [("quarterdeck.yaml", line, OWNER_TYPO)]
    with sessions() as session:
        kept = service.service_view(session, "checkout-api")
    assert (kept.owner, kept.problems) == ("checkout", [])
    assert [(e.file, e.line, e.field, e.message) for e in kept.import_errors] == [
        ("quarterdeck.yaml", line, "owner", OWNER_TYPO)
    ]
    # mended: applied, and the error is gone
    write_source(root, TEAM, CART, GOOD.replace("owner: checkout", "owner: user:ada"), PERSON_ADA)
    report = load(sessions, strict_settings, clock, root)
    assert report.errors == []
    with sessions() as session:
        mended = service.service_view(session, "checkout-api")
    assert (mended.owner, mended.import_errors, mended.problems) == ("user:ada", [], [])


def test_strict_refusal_also_refuses_what_only_the_refused_entity_would_have_resolved(
    sessions: sessionmaker[Session], strict_settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    orphan = TEAM.replace("slug: checkout", "slug: checkout\nparent: comerce")
    root, _line = write_source(tmp_path / "src", orphan, GOOD, CART)

    report = load(sessions, strict_settings, clock, root)

    messages = [error.message for error in report.errors]
    assert messages[0] == "team checkout: parent team 'comerce' is not in the catalog"
    # without the team, both services name an owner that is not there
    assert sorted(messages[1:]) == [
        "service cart-service: owner 'checkout' is not in the catalog",
        "service checkout-api: owner 'checkout' is not in the catalog",
    ]
    assert report.created == 0


def test_finding_them_takes_a_few_queries_whatever_the_number_of_entities(
    sessions: sessionmaker[Session], runtime: Runtime
) -> None:
    def statements(count: int) -> tuple[int, int]:
        drafts = [
            ServiceDraft(
                slug=f"svc-{n}",
                title="S",
                owner_ref=f"team-{n}",
                system_ref=f"system-{n}",
                contacts=[("lead", f"person-{n}"), ("pm", f"user:person-{n}")],
                dependencies=[("depends_on", "component", f"dep-{n}"), ("consumes_api", "api", f"api-{n}")],
            )
            for n in range(count)
        ]
        seen: list[str] = []

        def count_statement(*args: object) -> None:
            if str(args[2]).lstrip().upper().startswith("SELECT"):
                seen.append(str(args[2]))

        event.listen(runtime.engine, "before_cursor_execute", count_statement)
        try:
            with sessions() as session:
                found = references.dangling(session, drafts)
        finally:
            event.remove(runtime.engine, "before_cursor_execute", count_statement)
        return len(found), len(seen)

    # 400 services name 800 other services: one IN (...) chunk of each look-up, as for one service
    one, many = statements(1), statements(400)

    assert (one[0], many[0]) == (6, 6 * 400)
    assert many[1] == one[1] <= 5


# ---------------------------------------------------------------- the API


def test_an_api_edit_naming_nothing_is_kept_and_its_answer_warns(client: TestClient) -> None:
    create_team(client, "checkout")
    create_service(client, "checkout-api", "checkout")

    response = client.patch("/api/v1/services/checkout-api", json={"owner": "chekout"})

    assert response.status_code == 200, response.text
    assert response.json()["problems"] == [
        {
            "field": "owner",
            "ref": "chekout",
            "target": "team",
            "message": "owner 'chekout' is not in the catalog",
        }
    ]
    assert client.get("/api/v1/services/checkout-api").json()["problems"] == response.json()["problems"]


def test_strict_references_refuse_an_api_edit_naming_the_field_and_the_nearest_name(
    client: TestClient, strict_client: TestClient
) -> None:
    create_team(client, "checkout")
    create_service(client, "checkout-api", "checkout")

    patched = strict_client.patch("/api/v1/services/checkout-api", json={"owner": "chekout"})
    created = strict_client.post(
        "/api/v1/services", json={"slug": "cart", "owner": "checkout", "depends_on": ["checkout-ap"]}
    )

    error = error_of(patched, 422, "catalog.dangling_reference")
    assert error["message"] == "owner 'chekout' is not in the catalog; did you mean 'checkout'?"
    assert error["details"] == [
        {
            "field": "owner",
            "ref": "chekout",
            "message": "owner 'chekout' is not in the catalog; did you mean 'checkout'?",
            "suggestions": ["checkout"],
        }
    ]
    assert client.get("/api/v1/services/checkout-api").json()["owner"] == "checkout"
    assert error_of(created, 422, "catalog.dangling_reference")["details"][0]["suggestions"] == [
        "checkout-api"
    ]
    # a name the entity already gave is not the edit's doing: other fields stay editable
    client.patch("/api/v1/services/checkout-api", json={"depends_on": ["ledger"]})
    assert strict_client.patch("/api/v1/services/checkout-api", json={"tier": 2}).status_code == 200
    assert strict_client.patch("/api/v1/services/checkout-api", json={"owner": "checkout"}).status_code == 200


def test_admins_list_every_dangling_reference_a_page_at_a_time(
    client: TestClient,
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    root, line = write_source(tmp_path / "src", TEAM, CART, TYPOS)
    key = load(sessions, settings, clock, root).source
    client.post("/api/v1/teams", json={"slug": "payments", "name": "Payments", "parent": "finanse"})

    everything = client.get("/api/v1/references").json()
    first = client.get("/api/v1/references", params={"per_page": 2}).json()
    last = client.get("/api/v1/references", params={"per_page": 2, "page": 2}).json()

    assert (everything["total"], everything["page"], everything["per_page"]) == (3, 1, 50)
    assert everything["items"][0] == {
        "entity_type": "service",
        "entity": "checkout-api",
        "kind": "component",
        "url": "/services/checkout-api",
        "field": "depends_on",
        "ref": "cart-servce",
        "target": "service",
        "message": "dependency 'cart-servce' is not in the catalog",
        "suggestions": ["cart-service"],
        "source": key,
        "file": "quarterdeck.yaml",
        "line": line,
    }
    assert [(i["entity"], i["field"], i["ref"], i["suggestions"]) for i in everything["items"]] == [
        ("checkout-api", "depends_on", "cart-servce", ["cart-service"]),
        ("checkout-api", "owner", "chekout", ["checkout"]),
        ("payments", "parent", "finanse", []),
    ]
    assert everything["items"][2]["file"] is None  # made in the portal
    assert first["items"] + last["items"] == everything["items"]
    assert first["total"] == last["total"] == 3


def test_a_reference_that_starts_resolving_leaves_the_list_and_the_answer(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    create_service(client, "checkout-api", "chekout")
    assert client.get("/api/v1/references").json()["total"] == 1

    create_team(client, "chekout")

    assert client.get("/api/v1/references").json() == {"items": [], "total": 0, "page": 1, "per_page": 50}
    assert client.get("/api/v1/services/checkout-api").json()["problems"] == []
    with sessions() as session:
        assert service.check_read_model(session) == []


def test_only_admins_list_dangling_references(
    app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, "member@shop.example")
    token = make_token(sessions, clock, user="member@shop.example", scopes=["read"])
    with TestClient(app_under_test, headers=bearer(token)) as member:
        error_of(member.get("/api/v1/references"), 403, "access.forbidden")
