"""What several test packages share, each defined once: reading JSON answers and errors, a token as a
header, teams and services made over the API, the audit log, git, and waiting for a condition or a server.

What belongs to one domain (deploy report bodies and the page parser, signing in, jobs) stays in that
package's helpers module; the database fixtures are in tests/conftest.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.schemas import AuditEntryOut

Json = dict[str, Any]


# ---------------------------------------------------------------- HTTP answers


def bearer(token: str) -> dict[str, str]:
    """The header that sends an API token."""
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Response, status: int, code: str) -> Json:
    """The `error` object of a JSON error answer, after checking its status, code and shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error: Json = body["error"]
    assert sorted(error) == ["code", "details", "message"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


def problem(response: Response) -> tuple[int, str | None, list[str]]:
    """(status, error code, fields named) of an answer, to compare many bad requests at once."""
    if response.headers.get("content-type") != "application/json" or "error" not in response.json():
        return response.status_code, None, []
    error = response.json()["error"]
    assert sorted(error) == ["code", "details", "message"], error
    details = error["details"] if isinstance(error["details"], list) else []
    return response.status_code, error["code"], [detail["field"] for detail in details]


def team_brief(slug: str, name: str, email: str | None = None, chat: str | None = None) -> Json:
    """A team as other entities' answers show it."""
    return {"slug": slug, "name": name, "email": email, "chat_channel": chat, "url": f"/teams/{slug}"}


# ---------------------------------------------------------------- the catalog, made over the API


def posted(client: TestClient, url: str, body: Json) -> Json:
    """POST `body` to `url`, check the answer is 201, and return what was created."""
    response = client.post(url, json=body)
    assert response.status_code == 201, response.text
    answer: Json = response.json()
    return answer


def create_team(client: TestClient, slug: str, **fields: Any) -> Json:
    """A team named after its slug (`name=` and any other field override or add)."""
    return posted(client, "/api/v1/teams", {"slug": slug, "name": slug.title(), **fields})


def create_service(client: TestClient, slug: str, owner: str, **fields: Any) -> Json:
    """A service owned by `owner`, with only the fields given (tier, image, links, ...): the API's
    defaults for the rest."""
    return posted(client, "/api/v1/services", {"slug": slug, "owner": owner, **fields})


def audit_log(sessions: sessionmaker[Session]) -> list[AuditEntryOut]:
    """Every audit entry, oldest first."""
    with sessions() as session:
        entries, total = access.search(session, access.AuditFilters(), per_page=10_000)
    assert len(entries) == total
    return entries[::-1]


# ---------------------------------------------------------------- git


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity and no signing; its output, stripped."""
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    done = subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


# ---------------------------------------------------------------- waiting


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds naming `what` was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def wait_until_serving(
    base_url: str, process: subprocess.Popen[bytes] | None = None, *, timeout: float = 60.0
) -> None:
    """Wait until the portal at `base_url` answers its OpenAPI document with 200; when it runs as
    `process`, fail as soon as that process has ended."""

    def serving() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server ended (exit {process.returncode}) before serving {base_url}")
        try:
            return httpx.get(base_url + "/api/v1/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(serving, timeout=timeout, what=f"the server at {base_url} to serve")
