from __future__ import annotations
import pytest
from fastapi.testclient import TestClient
from tests.deploys.helpers import shop, report, post, TUPLES_DEPRECATION, parse_html

pytestmark = TUPLES_DEPRECATION


def test_probe(client: TestClient) -> None:
    shop(
        client,
        image="127.0.0.1:1/shop/checkout",
        links=[{"kind": "repo", "url": "https://github.com/shop/checkout"}],
    )
    post(
        client,
        [
            report("1.1.0", "staging"),
            report("1.0.0", "production", started=100, finished=90),
            report("1.1.0", "production", status="failed"),
        ],
    )
    r = client.get("/services/checkout/deploys")
    doc = parse_html(r.text)
    print(doc.by_id("live").text())
    print(doc.by_id("history").text())
    print(r.text[r.text.index('<section class="card" id="live"') : r.text.index('<section class="card">')])
    r = client.get("/deploys/3")
    print(r.text[r.text.index('<header class="entity-head"') :])
