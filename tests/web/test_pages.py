"""Server-rendered pages: every page renders, hostile text stays text, HTMX gets fragments."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.conftest import make_user, session_client
from tests.helpers import create_service, create_team

XSS = '<script>alert("xss")</script>'
IMG = "<img src=x onerror=alert(1)>"

HOSTILE = f"""\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: evil-svc
  title: 'Evil {XSS}'
  description: 'desc {IMG}'
  links:
    - url: "javascript:alert(document.cookie)"
      title: '{XSS}'
  annotations:
    quarterdeck.dev/contact.tech-lead: mallory
    note: '{XSS}'
spec:
  type: service
  lifecycle: production
  owner: evil-team
  system: evil-system
  dependsOn: ['component:"><svg onload=alert(1)>']
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: evil-team
  description: '{XSS}'
spec:
  type: team
  profile: {{displayName: 'Team {IMG}', email: 'evil@example.com'}}
  members: [mallory]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: mallory
spec:
  profile: {{displayName: 'Mallory {XSS}', email: 'mallory@example.com'}}
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata:
  name: evil-system
  title: 'System {XSS}'
  description: '{IMG}'
spec:
  owner: evil-team
"""

NOT_FOUND = f"/services/{XSS}"
"""The one page of the list that names nothing in the catalog: its 404 must still escape the name."""
PAGES = [
    "/",
    "/services",
    "/services/evil-svc",
    "/services/evil-svc/graph.svg",
    "/teams",
    "/teams/evil-team",
    "/people",
    "/people/mallory",
    "/people/mallory@example.com",
    "/systems",
    "/systems/evil-system",
    "/search?q=evil",
    f"/search?q={XSS}",
    "/services?q=evil",
    "/admin/references",
    NOT_FOUND,
]


@pytest.fixture
def hostile(
    tmp_path: Path, sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock
) -> TestClient | None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "catalog-info.yaml").write_text(HOSTILE)
    report = import_source(sessions, str(folder), settings=settings, clock=clock)
    assert report.errors == [] and report.created == 4
    return None


@pytest.mark.parametrize("path", PAGES)
def test_hostile_text_is_escaped_on_every_page(client: TestClient, hostile: None, path: str) -> None:
    response = client.get(path)
    assert response.status_code == (404 if path == NOT_FOUND else 200), response.text[:300]
    body = response.text
    assert XSS not in body
    assert "<img src=x" not in body
    assert "<svg onload" not in body
    assert 'href="javascript:' not in body
    if path in ("/services/evil-svc", "/teams/evil-team", "/people/mallory", "/systems/evil-system"):
        assert "&lt;script&gt;" in body or "&lt;img" in body


def test_service_page_shows_contacts_links_and_dependencies(client: TestClient, hostile: None) -> None:
    body = client.get("/services/evil-svc").text
    assert 'id="owner-link"' in body and "/teams/evil-team" in body
    assert "/people/mallory" in body
    assert "#unsafe-link" in body
    assert "not in the catalog" in body
    assert "<svg" in body and 'class="depgraph"' in body


def test_htmx_search_returns_a_fragment(client: TestClient, hostile: None) -> None:
    fragment = client.get("/search?q=evil", headers={"HX-Request": "true"})
    full = client.get("/search?q=evil")
    assert "<html" not in fragment.text and "/services/evil-svc" in fragment.text
    assert "<html" in full.text and "/services/evil-svc" in full.text


def test_htmx_service_filter_returns_rows_only(client: TestClient, hostile: None) -> None:
    fragment = client.get("/services?owner=evil-team", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert 'id="service-count"' in fragment.text and "1 service" in fragment.text


def test_unknown_pages_render_the_error_page(client: TestClient) -> None:
    response = client.get("/services/nope")
    assert response.status_code == 404
    assert "service &#39;nope&#39; is not in the catalog" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_pages_send_a_strict_content_security_policy(client: TestClient) -> None:
    csp = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_service_filter_form_sends_empty_fields(client: TestClient, hostile: None) -> None:
    response = client.get("/services?q=&owner=evil-team&tier=&lifecycle=&system=&tag=&kind=")
    assert response.status_code == 200
    assert "1 service" in response.text
    assert client.get("/services?tier=9").status_code == 422


def test_service_page_warns_of_a_reference_naming_nothing_with_the_nearest_name(client: TestClient) -> None:
    create_team(client, "checkout")
    create_service(client, "checkout-api", "chekout")

    body = client.get("/services/checkout-api").text

    assert 'id="reference-problems"' in body
    assert (
        '<li class="reference-problem" data-field="owner">owner &#39;chekout&#39; is not in the catalog; '
        'did you mean <a href="/teams/checkout">checkout</a>?</li>'
    ) in body

    assert client.patch("/api/v1/services/checkout-api", json={"owner": "checkout"}).status_code == 200
    assert 'id="reference-problems"' not in client.get("/services/checkout-api").text


def test_team_page_warns_of_a_parent_and_members_naming_nothing(client: TestClient) -> None:
    create_team(client, "finance")
    create_team(client, "payments", parent="finanse", members=[{"person": "grace@example.com"}])

    body = client.get("/teams/payments").text

    assert 'data-field="parent">parent team &#39;finanse&#39; is not in the catalog; did you mean' in body
    assert '<a href="/teams/finance">finance</a>' in body
    assert 'data-field="members">member &#39;grace@example.com&#39; is not in the catalog' in body


def test_admins_page_of_dangling_references(
    client: TestClient, app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    empty = client.get("/admin/references")
    assert empty.status_code == 200
    assert 'id="no-dangling-references"' in empty.text and "Every reference resolves." in empty.text

    create_team(client, "checkout")
    create_service(client, "checkout-api", "chekout")
    listed = client.get("/admin/references").text

    assert 'id="no-dangling-references"' not in listed
    assert '<tr data-entity="service:checkout-api" data-field="owner">' in listed
    assert "<code>checkout</code>" in listed and "made in the portal" in listed
    menu = listed.split('<details class="admin-menu"', 1)[1].split("</details>", 1)[0]
    assert '<a href="/admin/references" aria-current="page">References</a>' in menu  # the admins' menu

    make_user(sessions, clock, "member@shop.example")
    member = session_client(app_under_test, sessions, clock, "member@shop.example")
    assert member.get("/admin/references").status_code == 403
    assert "/admin/references" not in member.get("/services").text
