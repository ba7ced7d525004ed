"""What the deploy tests share: environments, a team and its services made through the API, and report bodies.

Every test starts from an empty database (tests/conftest.py); these build the little organisation a test
needs the way an admin or CI would, over HTTP.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import audit
from quarterdeck.clock import FrozenClock
from quarterdeck.deploys.models import Deploy, Release
from tests.conftest import NOW, make_token
from tests.helpers import Json, bearer, create_service, create_team

TEAM = "shop"
SERVICE = "checkout"
IMAGE = "registry.example.com/shop/checkout"
COMMITS = {
    "1.0.0": "1111111aaaaaaa",
    "1.1.0": "2222222bbbbbbb",
    "1.2.0": "3333333ccccccc",
    "2.0.0": "4444444ddddddd",
}
ENVIRONMENTS: tuple[tuple[str, str, bool], ...] = (
    ("staging", "Staging", False),
    ("production", "Production", True),
)
"""(slug, name, production) in the order the portal shows them."""


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ago(minutes: float, now: datetime = NOW) -> str:
    """An ISO 8601 UTC time `minutes` before `now` (the frozen clock's time by default)."""
    return iso(now - timedelta(minutes=minutes))


def put_environments(
    client: TestClient, environments: tuple[tuple[str, str, bool], ...] = ENVIRONMENTS
) -> None:
    for position, (slug, name, production) in enumerate(environments, start=1):
        response = client.put(
            f"/api/v1/environments/{slug}",
            json={"name": name, "position": position, "production": production},
        )
        assert response.status_code == 200, response.text


def shop(client: TestClient, *, image: str | None = IMAGE, **fields: Any) -> None:
    """Staging and production, team `shop`, and its tier-1 service `checkout` (built as `image`; None
    for no image)."""
    put_environments(client)
    create_team(client, TEAM)
    create_service(client, SERVICE, TEAM, tier=1, **({} if image is None else {"image": image}), **fields)


def report(
    version: str = "1.0.0",
    environment: str = "production",
    *,
    id: str | None = None,
    service: str = SERVICE,
    status: str = "succeeded",
    started: float = 60,
    finished: float | None = 50,
    now: datetime = NOW,
    **fields: Any,
) -> Json:
    """A deploy report as CI posts it; times are minutes before `now`, `finished=None` for none."""
    body: Json = {
        "id": id or f"ci:{service}:{environment}:{version}",
        "service": service,
        "environment": environment,
        "version": version,
        "image": f"{IMAGE}:{version}",
        "commit": COMMITS.get(version, "abcdef0123456"),
        "status": status,
        "started_at": ago(started, now),
    }
    if finished is not None and status != "running":
        body["finished_at"] = ago(finished, now)
    body.update(fields)
    return body


def post(client: TestClient, body: Json | list[Json], status: int = 201) -> Any:
    """POST /api/v1/deploys, checking the status; the JSON answer."""
    response = client.post("/api/v1/deploys", json=body)
    assert response.status_code == status, response.text
    return response.json()


def versions_of(page: Json) -> list[tuple[str, str, str]]:
    """(version, environment, status) of each deploy on a page of deploys, in order."""
    return [(d["release"]["version"], d["environment"], d["status"]) for d in page["items"]]


def live_versions(client: TestClient, slug: str = SERVICE) -> dict[str, str | None]:
    """Environment slug -> the version live there (None: never deployed)."""
    response = client.get(f"/api/v1/services/{slug}/live")
    assert response.status_code == 200, response.text
    return {
        e["environment"]["slug"]: e["deploy"]["release"]["version"] if e["deploy"] else None
        for e in response.json()["environments"]
    }


def count_rows(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(deploys, releases) stored."""
    with sessions() as session:
        deploys = session.scalar(select(func.count()).select_from(Deploy)) or 0
        releases = session.scalar(select(func.count()).select_from(Release)) or 0
    return deploys, releases


def audit_actions(sessions: sessionmaker[Session], deploy_id: int) -> list[str]:
    """The audit log's actions on one deploy, oldest first."""
    with sessions() as session:
        entries = audit.entries_for(session, target=("deploy", str(deploy_id)))
    return [entry.action for entry in reversed(entries)]


# ---------------------------------------------------------------- reading pages


VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


@dataclass
class Node:
    """An element of a parsed page: enough of a DOM to find by id, tag or class and read its text."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        """The text inside, with runs of white space made one space."""
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join("".join(parts).split())

    def all(self, tag: str | None = None, *, cls: str | None = None) -> list[Node]:
        """Every element below (depth first) with this tag and/or class."""
        found: list[Node] = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    found.append(child)
                found += child.all(tag, cls=cls)
        return found

    def find(self, element_id: str) -> Node | None:
        for node in self.all():
            if node.attrs.get("id") == element_id:
                return node
        return None

    def by_id(self, element_id: str) -> Node:
        node = self.find(element_id)
        assert node is not None, f"no element #{element_id}"
        return node

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


def cells(row: Node) -> list[str]:
    """The text of each cell of a table row."""
    return [cell.text() for cell in row.children if isinstance(cell, Node) and cell.tag in {"td", "th"}]


@contextmanager
def reporter(
    app: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock, name: str = "ci-shop", team: str = TEAM
) -> Iterator[TestClient]:
    """A client for CI: a service token with scope `deploy` for `team`, reporting as `token:<name>`."""
    token = make_token(sessions, clock, user=None, scopes=["deploy"], team=team, name=name)
    with TestClient(app, headers=bearer(token)) as client:
        yield client


RECORDER = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + '\\n')"
"""A command that appends its arguments, one call a line, to the file its first argument names."""


def recording_drivers(path: Path, call_log: Path) -> Path:
    """Write a drivers file at `path` whose `command` driver records each call as `METHOD KEY WEIGHT`
    in `call_log`, for every service in every environment; the path."""
    record = [sys.executable, "-c", RECORDER, str(call_log)]
    lines = ["drivers:", "  - driver: command", "    config:"]
    for method in ("prepare", "set_traffic", "promote", "rollback"):
        argv = [*record, method, "{idempotency_key}", "{weight}"]
        lines.append(f"      {method}: [{', '.join(repr(a) for a in argv)}]")
    path.write_text("\n".join(lines) + "\n")
    return path
