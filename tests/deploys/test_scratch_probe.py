from __future__ import annotations
import json
import pytest
from datetime import timedelta
from fastapi.testclient import TestClient
from quarterdeck.clock import FrozenClock
from tests.deploys.helpers import shop, report, post, create_service

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:sqlalchemy.exc.SADeprecationWarning")

def test_probe(client: TestClient, clock: FrozenClock) -> None:
    shop(client, links=[{"kind": "repo", "url": "https://github.com/shop/checkout"}])
    create_service(client, "cart", tier=2, image=None)
    post(client, report())
    clock.at += timedelta(minutes=1)
    post(client, report("1.1.0", "staging"))
    clock.at += timedelta(minutes=1)
    post(client, report("1.2.0", "staging"))
    clock.at += timedelta(minutes=1)
    d = post(client, report("1.2.0", "production", started=10, finished=5, now=clock.at))
    print(json.dumps(client.get(f"/api/v1/deploys/{d['deploy']['id']}/changes").json(), indent=1))
    print(json.dumps(client.get("/api/v1/matrix").json(), indent=1)[:3000])
    print(client.get("/api/v1/services/nope/deploys").json())
    print(client.post("/api/v1/deploys", json=report(service="nope")).json())
    print(client.get("/api/v1/services/checkout/live").json()["registry"])
    r = client.get("/services/checkout/deploys")
    print(r.status_code, r.text[:200])
