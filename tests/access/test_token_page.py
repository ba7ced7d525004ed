"""The account page's answer to a new token: a deploy token comes with the lines CI pastes to report
deploys with it (the `quarterdeck` command, or curl), shown that once; what curl sends is a report the API
takes. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import json
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.clock import FrozenClock
from tests.conftest import make_user, session_client
from tests.deploys.helpers import ago, shop
from tests.helpers import bearer

MEMBER = "max@example.com"
_TOKEN = re.compile(r'<code id="new-token-value">([^<]*)</code>')
_SNIPPET = re.compile(r'<code class="ci-snippet">([^<]*)</code>')


def test_a_new_deploy_token_shows_the_lines_to_paste_into_ci(
    app_under_test: FastAPI, client: TestClient, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    shop(client, image=None)
    make_user(sessions, clock, MEMBER, teams={"shop": "member"})
    browser = session_client(app_under_test, sessions, clock, MEMBER)

    page = browser.post("/account/tokens", data={"name": "ci", "scopes": ["deploy"], "expires": "30d"})

    assert page.status_code == 201, page.text
    [token] = [html.unescape(found) for found in _TOKEN.findall(page.text)]
    command, curl = [html.unescape(found) for found in _SNIPPET.findall(page.text)]
    assert command == (
        "# keep the token in your CI's secrets; VERSION and RUN_ID (a retry reuses it) come from your CI\n"
        "export QD_API_URL='http://127.0.0.1:8080'\n"
        f"export QD_API_TOKEN='{token}'\n"
        'quarterdeck deploys report --service SERVICE --environment ENVIRONMENT --version "$VERSION" '
        '--id "$RUN_ID"'
    )
    head, body = curl.split(" <<EOF\n")
    assert head == (
        f"curl -fsS 'http://127.0.0.1:8080/api/v1/deploys' -H 'Authorization: Bearer {token}' \\\n"
        "  -H 'Content-Type: application/json' --data-binary @-"
    )
    # The body, with what the shell and the pipeline fill in, is a report the API takes from this token.
    filled = (
        body.removesuffix("\nEOF")
        .replace("$RUN_ID", "pipeline-1")
        .replace("SERVICE", "checkout")
        .replace("ENVIRONMENT", "staging")
        .replace("$VERSION", "1.2.0")
        .replace("$(date -u +%Y-%m-%dT%H:%M:%SZ)", ago(1))
    )
    with TestClient(app_under_test, headers=bearer(token)) as ci:
        reported = ci.post("/api/v1/deploys", json=json.loads(filled))
    assert reported.status_code == 201, reported.text
    assert reported.json()["deploy"]["deployed_by"] == "token:ci"
    # shown once: the page read again has neither the token nor the lines
    again = browser.get("/account")
    assert (token in again.text, _SNIPPET.findall(again.text)) == (False, [])


def test_a_token_that_cannot_report_deploys_comes_without_ci_lines(
    app_under_test: FastAPI, sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    make_user(sessions, clock, MEMBER)
    browser = session_client(app_under_test, sessions, clock, MEMBER)

    page = browser.post("/account/tokens", data={"name": "reader", "scopes": ["read"]})

    assert page.status_code == 201, page.text
    assert len(_TOKEN.findall(page.text)) == 1
    assert _SNIPPET.findall(page.text) == []
