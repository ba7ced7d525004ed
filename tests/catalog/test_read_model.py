"""The materialized read model: a service's stored answer follows every write that changes what it
shows (its own fields, its owner, contacts, system, both ends of its edges), in the same
transaction, whatever process made the write; the check finds a stored answer that drifted, and a
rebuild mends it. Lists walk the whole catalog by cursor."""

from __future__ import annotations

import threading
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import Actor
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.cli import materialize_missing
from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.runtime import Runtime, running
from tests.helpers import create_service, create_team, error_of, posted

API = "/api/v1/services"
EXAMPLES = Path(__file__).parents[2] / "examples"


def consistent(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return catalog.check_read_model(session)


def test_renaming_the_owner_team_changes_the_answer_and_its_etag(client: TestClient) -> None:
    create_team(client, "payments", name="Payments")
    before = create_service(client, "ledger", "payments")
    assert before["owner_detail"]["team"]["name"] == "Payments"

    client.patch("/api/v1/teams/payments", json={"name": "Payments & Ledger"}).raise_for_status()

    after = client.get(f"{API}/ledger")
    assert after.json()["owner_detail"]["team"]["name"] == "Payments & Ledger"
    assert after.json()["version"] == before["version"]
    assert after.headers["etag"] != before["etag"]
    assert client.get(f"{API}/ledger", headers={"If-None-Match": before["etag"]}).status_code == 200
    stale = client.patch(f"{API}/ledger", json={"tier": 2}, headers={"If-Match": before["etag"]})
    error_of(stale, 412, "catalog.stale_etag")


def test_contacts_follow_the_person_and_their_old_address_lets_go(client: TestClient) -> None:
    create_team(client, "payments")
    posted(client, "/api/v1/people", {"email": "ada@example.com", "name": "Ada", "handle": "ada"})
    create_service(client, "ledger", "payments", contacts=[{"role": "oncall", "person": "ada@example.com"}])
    create_service(client, "vault", "user:ada")

    client.patch("/api/v1/people/ada", json={"name": "Ada L."}).raise_for_status()
    assert client.get(f"{API}/ledger").json()["contacts"][0]["person"]["name"] == "Ada L."
    assert client.get(f"{API}/vault").json()["owner_detail"]["person"]["name"] == "Ada L."

    client.patch("/api/v1/people/ada", json={"email": "ada@elsewhere.example"}).raise_for_status()
    assert client.get(f"{API}/ledger").json()["contacts"][0]["person"] is None
    assert client.get(f"{API}/vault").json()["owner_detail"]["person"]["email"] == "ada@elsewhere.example"


def test_both_ends_of_an_edge_follow_creation_renaming_and_deletion(client: TestClient) -> None:
    create_team(client, "payments")
    create_service(client, "checkout", "payments", depends_on=["ledger"])
    edge = client.get(f"{API}/checkout").json()["depends_on"][0]
    assert (edge["slug"], edge["exists"], edge["title"]) == ("ledger", False, None)

    create_service(client, "ledger", "payments", title="Ledger", tier=1)
    edge = client.get(f"{API}/checkout").json()["depends_on"][0]
    assert (edge["exists"], edge["title"], edge["tier"]) == (True, "Ledger", 1)
    assert [d["slug"] for d in client.get(f"{API}/ledger").json()["dependents"]] == ["checkout"]

    client.patch(f"{API}/ledger", json={"title": "General ledger"}).raise_for_status()
    assert client.get(f"{API}/checkout").json()["depends_on"][0]["title"] == "General ledger"

    client.patch(f"{API}/checkout", json={"depends_on": []}).raise_for_status()
    assert client.get(f"{API}/ledger").json()["dependents"] == []

    client.patch(f"{API}/checkout", json={"depends_on": ["ledger"]}).raise_for_status()
    client.delete(f"{API}/ledger").raise_for_status()
    assert client.get(f"{API}/checkout").json()["depends_on"][0]["exists"] is False


def test_the_system_title_and_a_deleted_team_show_at_once(client: TestClient) -> None:
    create_team(client, "payments", name="Payments")
    posted(client, "/api/v1/systems", {"slug": "money", "title": "Money"})
    create_service(client, "ledger", "payments", system="money")

    client.patch("/api/v1/systems/money", json={"title": "Money movement"}).raise_for_status()
    assert client.get(f"{API}/ledger").json()["system_detail"]["name"] == "Money movement"

    client.delete("/api/v1/teams/payments").raise_for_status()
    assert client.get(f"{API}/ledger").json()["owner_detail"] == {
        "ref": "payments",
        "team": None,
        "person": None,
    }


def test_a_write_by_another_process_shows_on_the_next_read(
    client: TestClient, settings: Settings, clock: FrozenClock
) -> None:
    """No cache to expire: another replica's write is in the stored answer when it commits."""
    create_team(client, "payments", name="Payments")
    create_service(client, "ledger", "payments")
    assert client.get(f"{API}/ledger").json()["owner_detail"]["team"]["name"] == "Payments"
    with running(settings, clock=clock) as other, transaction(other.writers) as session:
        row = catalog.find_row(session, "team", "payments")
        catalog.update(
            session,
            Actor.system("replica"),
            row,
            {"name": "Elsewhere"},
            if_match=None,
            partial=True,
            now=clock.now(),
        )
    assert client.get(f"{API}/ledger").json()["owner_detail"]["team"]["name"] == "Elsewhere"


def test_an_import_then_edits_leave_every_stored_answer_as_the_tables_say(
    client: TestClient, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    report = import_source(runtime.writers, str(EXAMPLES), settings=runtime.settings, clock=runtime.clock)
    assert report.created > 10
    slugs = [item["slug"] for item in client.get(f"{API}?per_page=500").json()["items"]]
    team = client.get(f"{API}/{slugs[0]}").json()["owner"]
    client.patch(f"/api/v1/teams/{team}", json={"name": "Renamed"}).raise_for_status()
    client.delete(f"{API}/{slugs[1]}").raise_for_status()
    assert consistent(sessions) == []

    with transaction(runtime.writers) as session:
        session.execute(
            text("UPDATE service_views SET body = replace(body, :was, :now)"),
            {"was": '"version":1,', "now": '"version":99,'},
        )
    problems = consistent(sessions)
    assert problems and all("stored answer differs" in problem for problem in problems)

    with transaction(runtime.writers) as session:
        assert catalog.rebuild_read_model(session) == len(slugs) - 1
    assert consistent(sessions) == []


def test_an_upgraded_database_materializes_the_services_it_already_had(
    client: TestClient, runtime: Runtime, sessions: sessionmaker[Session]
) -> None:
    create_team(client, "payments")
    create_service(client, "ledger", "payments")
    with transaction(runtime.writers) as session:
        session.execute(text("DELETE FROM service_views"))
    assert client.get(f"{API}/ledger").status_code == 404

    assert materialize_missing(runtime) == 1
    assert materialize_missing(runtime) == 0
    assert client.get(f"{API}/ledger").json()["slug"] == "ledger"


def test_racing_writers_of_a_team_and_its_services_leave_no_stale_answer(
    client: TestClient, runtime: Runtime, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    """Renaming a team while its services are edited: on PostgreSQL each would build its answers
    from the other's rows as they were, but for the catalog write lock."""
    create_team(client, "payments")
    for number in range(4):
        create_service(client, f"svc-{number}", "payments")
    failures: list[BaseException] = []

    def write(table: str, key: str, fields: dict[str, object]) -> None:
        try:
            with transaction(runtime.writers) as session:
                row = catalog.find_row(session, table, key)
                catalog.update(
                    session, Actor.system("race"), row, fields, if_match=None, partial=True, now=clock.now()
                )
        except BaseException as exc:
            failures.append(exc)

    for round_ in range(6):
        threads = [threading.Thread(target=write, args=("team", "payments", {"name": f"Payments {round_}"}))]
        threads += [
            threading.Thread(target=write, args=("service", f"svc-{n}", {"title": f"Service {n}.{round_}"}))
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert consistent(sessions) == []
    assert client.get(f"{API}/svc-3").json()["owner_detail"]["team"]["name"] == "Payments 5"


def test_a_cursor_walks_every_service_once_in_order(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    create_team(client, "payments")
    slugs = sorted(f"svc-{n:02d}" for n in range(23))
    for slug in slugs:
        create_service(client, slug, "payments", tags=["even"] if int(slug[-2:]) % 2 == 0 else [])
    (tmp_path / "api.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata: {name: svc-05}\n"
        "spec: {type: openapi, lifecycle: production, owner: payments, definition: 'openapi: 3.0.0'}\n"
    )
    report = import_source(runtime.writers, str(tmp_path), settings=runtime.settings, clock=runtime.clock)
    assert (report.created, report.errors) == (1, [])

    seen: list[tuple[str, str]] = []
    answer = client.get(f"{API}?per_page=5").json()
    while True:
        assert answer["total"] == 24
        seen += [(item["slug"], item["kind"]) for item in answer["items"]]
        if answer["next_cursor"] is None:
            break
        answer = client.get(f"{API}?per_page=5&cursor={answer['next_cursor']}").json()
    assert seen == sorted([(slug, "component") for slug in slugs] + [("svc-05", "api")])

    tagged = client.get(f"{API}?tag=even&per_page=4").json()
    second = client.get(f"{API}?tag=even&per_page=4&cursor={tagged['next_cursor']}").json()
    assert [i["slug"] for i in tagged["items"] + second["items"]] == slugs[0:16:2]


def test_a_bad_cursor_or_a_cursor_with_a_page_is_refused_by_name(client: TestClient) -> None:
    bad = client.get(f"{API}?cursor=not-a-cursor")
    assert error_of(bad, 422, "catalog.bad_cursor")["details"][0]["field"] == "cursor"
    cursor = client.get(f"{API}?per_page=1").json()["next_cursor"] or "WyJhIiwiYiJd"
    both = client.get(f"{API}?cursor={cursor}&page=2")
    assert error_of(both, 422, "catalog.cursor_and_page")["details"][0]["field"] == "page"
