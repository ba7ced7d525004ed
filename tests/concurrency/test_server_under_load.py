"""A real `quarterdeck serve` process with its default settings, on SQLite and on PostgreSQL, under
concurrent writers and readers: no 5xx, reads keep being answered, no lost update, and exactly one of
any set of racing decisions wins. Speed is measured by `make bench` (bench/concurrency.py), not here.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import GlobalRole
from quarterdeck.clock import FrozenClock
from tests.concurrency.load import lost_updates, race, run_load
from tests.conftest import make_token, make_user
from tests.server_process import resident_kib, running_server

HOT = "hot-api"
SPREAD = [f"svc-{n:02d}" for n in range(40)]
DECIDERS = 20
WORST_READ_MS = 5_000
"""No read may wait this long: the freeze this suite guards against held reads for 10 to 30 s."""


class Org:
    def __init__(self, base: str, admin: str, deciders: list[str], pid: int) -> None:
        self.base, self.admin, self.deciders, self.pid = base, admin, deciders, pid

    def call(self, method: str, path: str, json: object = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, self.base + path, json=json, headers=headers, timeout=30)


@pytest.fixture
def org(sessions: sessionmaker[Session], clock: FrozenClock, db_url: str, tmp_path: Path) -> Iterator[Org]:
    make_user(sessions, clock, "admin@load.example", role=GlobalRole.ADMIN)
    admin = make_token(sessions, clock, user="admin@load.example", scopes=["admin"])
    deciders = []
    for n in range(DECIDERS):
        email = f"decider{n}@load.example"
        make_user(sessions, clock, email, teams={"load": "member"})
        deciders.append(make_token(sessions, clock, user=email, scopes=["deploy"]))
    with running_server(db_url, log=tmp_path / "server.log") as (process, base):
        made = Org(base, admin, deciders, process.pid)
        assert made.call("POST", "/api/v1/teams", {"slug": "load", "name": "Load"}).status_code == 201
        for slug in [HOT, *SPREAD]:
            created = made.call("POST", "/api/v1/services", {"slug": slug, "owner": "load", "tier": 1})
            assert created.status_code == 201, created.text
        for position, (env, production) in enumerate((("staging", False), ("production", True)), start=1):
            body = {"name": env.title(), "position": position, "production": production}
            assert made.call("PUT", f"/api/v1/environments/{env}", body).status_code == 200
        yield made
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-4000:]


def test_32_writers_and_readers_for_20_seconds(org: Org, sessions: sessionmaker[Session]) -> None:
    result = run_load(org.base, org.admin, hot=HOT, services=SPREAD, writers=32, readers=8, seconds=20)
    summary = result.summary()
    assert result.server_errors == 0, summary
    assert set(result.statuses) <= {("read", 200), ("write", 200), ("write", 412)}, summary
    assert result.count("write", lambda s: s == 200) > 100, summary
    assert result.count("write", lambda s: s == 412) > 0, "the hot writers never raced each other"
    assert result.count("read") > 100, summary
    assert max(result.read_ms) < WORST_READ_MS, summary
    assert lost_updates(sessions, "service") == []


def test_of_20_racing_decisions_on_one_approval_exactly_one_wins(org: Org) -> None:
    asked = org.call(
        "POST", "/api/v1/approvals", {"service": HOT, "environment": "production", "summary": "ship it"}
    )
    assert asked.json()["status"] == "pending", asked.text
    path = f"/api/v1/approvals/{asked.json()['id']}"
    answers = race(
        org.base,
        [
            ("POST", f"{path}/{'approve' if n % 2 else 'reject'}", token, None)
            for n, token in enumerate(org.deciders)
        ],
    )
    assert Counter(a.status_code for a in answers) == {200: 1, 409: DECIDERS - 1}
    winner = next(a for a in answers if a.status_code == 200).json()
    assert org.call("GET", path).json()["status"] == winner["status"]
    losers = [a.json()["error"]["code"] for a in answers if a.status_code == 409]
    assert set(losers) == {"approval.not_pending"}
    audit = org.call("GET", f"/api/v1/audit?target_type=approval&target_id={asked.json()['id']}").json()
    decided = {"approved": "approval.approve", "rejected": "approval.reject"}[winner["status"]]
    assert Counter(e["action"] for e in audit["items"]) == {"approval.request": 1, decided: 1}


def _report(status: str, deploy_id: str = "ci:race:1") -> dict[str, object]:
    body: dict[str, object] = {
        "id": deploy_id,
        "service": HOT,
        "environment": "staging",
        "version": "1.0.0",
        "status": status,
        "started_at": "2026-11-25T11:00:00Z",
    }
    if status != "running":
        body["finished_at"] = "2026-11-25T11:05:00Z"
    return body


def test_20_racing_first_reports_of_one_deploy_make_one_deploy(org: Org) -> None:
    answers = race(org.base, [("POST", "/api/v1/deploys", org.admin, _report("running"))] * 20)
    assert Counter(a.status_code for a in answers) == {201: 1, 200: 19}, [a.text for a in answers]
    assert Counter(a.json()["outcome"] for a in answers) == {"created": 1, "unchanged": 19}
    assert len({a.json()["deploy"]["id"] for a in answers}) == 1
    history = org.call("GET", f"/api/v1/services/{HOT}/deploys").json()
    assert history["total"] == 1


def test_50_racing_moves_of_one_running_deploy_make_one_move(org: Org) -> None:
    assert org.call("POST", "/api/v1/deploys", _report("running")).status_code == 201
    answers = race(
        org.base,
        [
            ("POST", "/api/v1/deploys", org.admin, _report("succeeded" if n % 2 else "failed"))
            for n in range(50)
        ],
    )
    outcomes = Counter((a.status_code, a.json().get("outcome") or a.json()["error"]["code"]) for a in answers)
    assert outcomes[(200, "updated")] == 1, outcomes
    assert outcomes[(200, "updated")] + outcomes[(200, "unchanged")] == 25, outcomes
    assert outcomes[(409, "deploys.bad_transition")] == 25, outcomes
    deploy_id = next(a.json()["deploy"]["id"] for a in answers if a.status_code == 200)
    audit = org.call("GET", f"/api/v1/audit?target_type=deploy&target_id={deploy_id}").json()
    assert sorted(e["action"] for e in audit["items"]) == ["deploy.report", "deploy.update"]


def _post_raw(base: str, head: str, body_chunks: int) -> bytes:
    """A POST written by hand, so the body can be declared huge or streamed in 1 MiB chunks; the
    status line of the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode())
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(body_chunks):
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the body ended: what it should do
        return conn.recv(4096).split(b"\r\n", 1)[0]


def test_huge_bodies_are_refused_early_in_bounded_memory(org: Org) -> None:
    before = resident_kib(org.pid)
    for _ in range(3):
        declared = (
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
        )
        assert _post_raw(org.base, declared, 0) == b"HTTP/1.1 413 Request Entity Too Large"
        streamed = (
            "POST /api/v1/services HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        assert _post_raw(org.base, streamed, 100) == b"HTTP/1.1 413 Request Entity Too Large"
    assert resident_kib(org.pid) - before < 50 * 1024
    assert org.call("GET", f"/api/v1/services/{HOT}").status_code == 200
