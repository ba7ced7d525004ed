"""What runs where against what the registry holds: live versions with the real `docker-registry`.

One registry for the module holds three images of shop/checkout built on different days (the newest
also tagged `latest`); each test gets its own database (SQLite and PostgreSQL) and its own app.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from tests.deploys.helpers import cells, parse_html, post, put_environments, report, reporter, shop
from tests.helpers import Json, bearer
from tests.registry_server import push_image, registry_installed, registry_server

REPOSITORY = "shop/checkout"
BUILT = {"1.0.0": "2026-11-01T09:00:00Z", "1.1.0": "2026-11-10T09:00:00Z", "1.2.0": "2026-11-20T09:00:00Z"}
ENVIRONMENTS = (
    ("dev", "Dev", False),
    ("staging", "Staging", False),
    ("production", "Production", True),
    ("qa", "QA", False),
)


@dataclass(frozen=True)
class Registry:
    host: str
    """`127.0.0.1:PORT`, as image references name it."""
    digests: dict[str, str]
    """version -> digest of its image."""

    @property
    def image(self) -> str:
        return f"{self.host}/{REPOSITORY}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not registry_installed():
        pytest.skip("the docker-registry binary is not installed (apt-get install docker-registry)")
    with registry_server(tmp_path_factory.mktemp("registry")) as base_url:
        digests = {
            version: push_image(
                base_url,
                REPOSITORY,
                [version, "latest"] if version == "1.2.0" else [version],
                created=built,
                payload=f"checkout {version}\n".encode(),
            )
            for version, built in BUILT.items()
        }
        yield Registry(host=base_url.removeprefix("http://"), digests=digests)


@pytest.fixture
def admin(
    settings: Settings,
    clock: FrozenClock,
    admin_token: str,
    sessions: sessionmaker[Session],
    registry: Registry,
) -> Iterator[TestClient]:
    """The portal reading the test registry over plain HTTP, with checkout deployed four ways:
    dev runs 1.1.0, staging the newest pinned by digest, production the oldest, qa a build the registry
    does not hold."""
    app = create_app(settings.model_copy(update={"registry_plain_http": registry.host}), clock=clock)
    with TestClient(app, headers=bearer(admin_token)) as client:
        put_environments(client, ENVIRONMENTS)
        shop(client, image=registry.image)
        with reporter(app, sessions, clock) as ci:
            post(
                ci,
                [
                    report("1.1.0", "dev", image=f"{registry.image}:1.1.0"),
                    report("1.2.0", "staging", image=f"{registry.image}@{registry.digests['1.2.0']}"),
                    report("1.0.0", "production", image=f"{registry.image}:1.0.0"),
                    report("0.9.0-local", "qa", image=f"{registry.image}:0.9.0-local"),
                ],
            )
        yield client
    app.state.runtime.close()


def image(registry: Registry, tag: str, version: str) -> Json:
    return {"tag": tag, "digest": registry.digests[version], "created": BUILT[version]}


def test_live_names_the_newest_image_and_how_far_behind_each_environment_is(
    admin: TestClient, registry: Registry
) -> None:
    live = admin.get("/api/v1/services/checkout/live").json()

    assert live["registry"] == {
        "repository": registry.image,
        "host": registry.host,
        "latest": image(registry, "1.2.0", "1.2.0"),
        "images": [
            image(registry, "1.2.0", "1.2.0"),
            image(registry, "latest", "1.2.0"),
            image(registry, "1.1.0", "1.1.0"),
            image(registry, "1.0.0", "1.0.0"),
        ],
        "error": None,
        "problem": None,
    }
    # behind counts distinct newer images, so `latest` beside 1.2.0 counts once
    assert [
        (
            e["environment"]["slug"],
            e["deploy"]["release"]["version"],
            e["deploy"]["release"]["digest"],
            e["behind"],
        )
        for e in live["environments"]
    ] == [
        ("dev", "1.1.0", None, 1),
        ("staging", "1.2.0", registry.digests["1.2.0"], 0),
        ("production", "1.0.0", None, 2),
        # a build the registry never held: how far behind cannot be told
        ("qa", "0.9.0-local", None, None),
    ]


def test_the_deploys_tab_says_how_many_images_behind(admin: TestClient, registry: Registry) -> None:
    response = admin.get("/services/checkout/deploys")

    assert response.status_code == 200, response.text
    doc = parse_html(response.text)
    behind = {
        row.attrs["data-environment"]: cells(row)[-1]
        for row in doc.by_id("live-versions").all("tr")
        if "data-environment" in row.attrs
    }
    assert behind == {
        "dev": "1 image behind",
        "staging": "up to date",
        "production": "2 images behind",
        "qa": "—",
    }
    assert doc.find("registry-message") is None
    assert doc.by_id("registry-latest").text() == "1.2.0"
    assert doc.by_id("registry").text() == (
        f"Newest image in {registry.image}: 1.2.0 built 5 d ago {registry.digests['1.2.0'][:19]}…"
    )
