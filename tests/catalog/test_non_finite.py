"""NaN, Infinity and overflowing numbers (1e400 parses to inf) in `custom`: a located 422 from the API,
a located error for the one descriptor file on import, never a 500 or an aborted import. Both dialects.

JSON bodies are written by hand: httpx's `json=` refuses NaN, while a client may well send it and
Python's JSON parser (hence FastAPI's) accepts it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import service
from quarterdeck.catalog.importer import import_source
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.errors import NotFound
from tests.helpers import error_of

API = "/api/v1/services"
TEAM = {"slug": "payments-team", "name": "Payments"}

# (custom value as JSON text, the field the 422 names, what its message says or None)
NON_FINITE_BODIES = [
    pytest.param('{"cost": NaN}', "custom.cost", "must be a finite number, not NaN", id="nan"),
    pytest.param('{"cost": Infinity}', "custom.cost", "must be a finite number, not Infinity", id="infinity"),
    pytest.param('{"cost": -Infinity}', "custom.cost", "not -Infinity", id="minus-infinity"),
    pytest.param('{"cost": 1e400}', "custom.cost", "not Infinity", id="overflow-to-inf"),
    pytest.param('{"cost": -1e400}', "custom.cost", "not -Infinity", id="overflow-to-minus-inf"),
    pytest.param('{"ok": 1.5, "cost": NaN}', "custom.cost", "not NaN", id="second-key"),
    # containers are not custom values at all; still a 422 that names the field, never a 500
    pytest.param('{"cost": [1, NaN]}', "custom.cost", None, id="nan-in-list"),
    pytest.param('{"cost": {"eur": Infinity}}', "custom.cost", None, id="inf-in-dict"),
]


def send(client: TestClient, method: str, url: str, body_json: str, if_match: str | None = None) -> Response:
    headers = {"Content-Type": "application/json", **({"If-Match": if_match} if if_match else {})}
    response: Response = client.request(method, url, content=body_json.encode(), headers=headers)
    return response


def service_body(custom_json: str, slug: str = "payments-api") -> str:
    return f'{{"slug": "{slug}", "owner": "payments-team", "custom": {custom_json}}}'


def assert_names_field(response: Response, field: str, says: str | None = None) -> None:
    error = error_of(response, 422, "request.invalid")
    fields = [detail["field"] for detail in error["details"]]
    assert fields and all(f == field or f.startswith(field + ".") for f in fields), error
    assert error["message"].startswith(field), error
    if says is not None:
        [detail] = error["details"]  # one error, not one per member of the value's type union
        assert says in detail["message"], error


@pytest.fixture
def team(client: TestClient) -> None:
    response = client.post("/api/v1/teams", json=TEAM)
    assert response.status_code == 201, response.text


def create(client: TestClient, custom: dict[str, Any]) -> dict[str, Any]:
    response = client.post(API, json={"slug": "payments-api", "owner": "payments-team", "custom": custom})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize(("custom_json", "field", "says"), NON_FINITE_BODIES)
def test_post_refuses_non_finite_custom_values(
    client: TestClient, custom_json: str, field: str, says: str | None
) -> None:
    response = send(client, "POST", API, service_body(custom_json))

    assert_names_field(response, field, says)
    assert client.get(f"{API}/payments-api").status_code == 404


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize(("custom_json", "field", "says"), NON_FINITE_BODIES)
def test_put_refuses_non_finite_custom_values(
    client: TestClient, custom_json: str, field: str, says: str | None
) -> None:
    created = create(client, {"cost": 10})

    response = send(client, "PUT", f"{API}/payments-api", service_body(custom_json), created["etag"])

    assert_names_field(response, field, says)
    after = client.get(f"{API}/payments-api").json()
    assert (after["custom"], after["version"]) == ({"cost": 10}, created["version"])


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize(("custom_json", "field", "says"), NON_FINITE_BODIES)
def test_patch_refuses_non_finite_custom_values(
    client: TestClient, custom_json: str, field: str, says: str | None
) -> None:
    created = create(client, {"cost": 10})

    response = send(
        client,
        "PATCH",
        f"{API}/payments-api",
        f'{{"custom": {custom_json}}}',
        created["etag"],
    )

    assert_names_field(response, field, says)
    after = client.get(f"{API}/payments-api").json()
    assert (after["custom"], after["version"]) == ({"cost": 10}, created["version"])


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize(
    ("fields_json", "field"),
    [
        ('"annotations": {"cost": NaN}', "annotations.cost"),
        ('"links": [{"url": "https://example.com", "title": Infinity}]', "links.0.title"),
        ('"tier": NaN', "tier"),
    ],
)
def test_other_fields_refuse_non_finite_numbers_too(client: TestClient, fields_json: str, field: str) -> None:
    response = send(
        client, "POST", API, f'{{"slug": "payments-api", "owner": "payments-team", {fields_json}}}'
    )

    assert_names_field(response, field)


@pytest.mark.usefixtures("team")
def test_finite_numbers_still_pass(client: TestClient) -> None:
    custom = {"cost": 1.5, "big": 1e308, "tiny": -5e-324, "count": 3, "pci": True, "centre": "4100"}

    response = send(client, "POST", API, service_body(json.dumps(custom)))

    assert response.status_code == 201, response.text
    assert response.json()["custom"] == custom


# ---------------------------------------------------------------- import

GOOD = """\
apiVersion: quarterdeck/v1
kind: Team
slug: payments-team
name: Payments
---
apiVersion: quarterdeck/v1
kind: Service
slug: payments-api
owner: payments-team
custom:
  cost: 12.5
"""

BAD = """\
apiVersion: quarterdeck/v1
kind: Service
slug: ledger
owner: payments-team
custom:
  centre: "4100"
  cost: {value}
"""


@pytest.mark.parametrize("value", [".nan", ".inf", "-.Inf", "1.0e+400", "-1.0e+400"])
def test_import_refuses_the_bad_file_and_imports_the_good_one(
    sessions: sessionmaker[Session], settings: Settings, clock: FrozenClock, tmp_path: Path, value: str
) -> None:
    source = tmp_path / "src"
    (source / "bad").mkdir(parents=True)
    (source / "quarterdeck.yaml").write_text(GOOD, encoding="utf-8")
    (source / "bad" / "quarterdeck.yaml").write_text(BAD.format(value=value), encoding="utf-8")

    report = import_source(sessions, str(source), settings=settings, clock=clock)

    assert [(e.file, e.line) for e in report.errors] == [("bad/quarterdeck.yaml", 7)]
    assert report.errors[0].message.startswith("custom.cost: ")
    assert "finite" in report.errors[0].message
    assert report.outcomes == {"quarterdeck.yaml": "imported", "bad/quarterdeck.yaml": "invalid"}
    with sessions() as session:
        assert service.service_view(session, "payments-api").custom == {"cost": 12.5}
        with pytest.raises(NotFound):
            service.service_view(session, "ledger")
