"""A version CI never reported is deployable when the service's registry repository holds an image
tagged with it: the first rollout records it as a release (image and digest from the registry). A real
`docker-registry` on both databases."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from quarterdeck.app import create_app
from quarterdeck.clock import FrozenClock
from quarterdeck.config import Settings
from quarterdeck.deploys.models import Release
from tests.conftest import make_token, make_user
from tests.deploys.helpers import post, put_environments, report
from tests.helpers import bearer, create_service, create_team
from tests.registry_server import push_image, registry_installed, registry_server

pytestmark = pytest.mark.skipif(not registry_installed(), reason="docker-registry is missing: make test-deps")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with registry_server(tmp_path_factory.mktemp("registry")) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path, registry: str) -> Settings:
    drivers = tmp_path / "drivers.yaml"
    noop = [sys.executable, "-c", "pass"]
    methods = "\n".join(f"      {m}: {noop!r}" for m in ("prepare", "set_traffic", "promote", "rollback"))
    drivers.write_text(f"drivers:\n  - driver: command\n    config:\n{methods}\n")
    return Settings(
        database_url=db_url,
        git_cache_dir=tmp_path / "git",
        embedded_worker=False,
        deploy_drivers=drivers,
        deploy_state_dir=tmp_path / "state",
        registry_plain_http=registry.removeprefix("http://"),
    )


def test_a_registry_tag_is_a_release_the_first_rollout_records(
    settings: Settings, registry: str, admin_token: str, clock: FrozenClock
) -> None:
    host = registry.removeprefix("http://")
    dialect = "postgresql" if settings.database_url.startswith("postgresql") else "sqlite"
    repository = f"{host}/shop/checkout-{dialect}"  # one repository per database: the registry is shared
    digest = push_image(registry, repository.split("/", 1)[1], ["2.0.0"], created="2026-11-30T10:00:00Z")
    app = create_app(settings, clock=clock)
    try:
        with TestClient(app, headers=bearer(admin_token)) as admin:
            put_environments(admin, (("staging", "Staging", False),))
            create_team(admin, "shop")
            create_service(admin, "checkout", "shop", tier=3, image=repository)
            post(admin, report("1.0.0", "staging", service="checkout", image=f"{repository}:1.0.0"))
            runtime = app.state.runtime
            make_user(runtime.sessions, clock, "dev@shop.example", teams={"shop": "member"})
            token = make_token(
                runtime.sessions, clock, user="dev@shop.example", scopes=["deploy"], name="dev"
            )
            with TestClient(app, headers=bearer(token)) as dev:
                unknown = dev.post(
                    "/api/v1/services/checkout/rollouts", json={"version": "2.0.1", "environment": "staging"}
                )
                started = dev.post(
                    "/api/v1/services/checkout/rollouts", json={"version": "2.0.0", "environment": "staging"}
                )

            assert unknown.status_code == 404, unknown.text
            assert unknown.json()["error"]["code"] == "rollouts.unknown_version"
            assert started.status_code == 201, started.text
            assert started.json()["version"] == "2.0.0"
            with runtime.sessions() as session:
                release = session.scalar(select(Release).where(Release.version == "2.0.0"))
                assert release is not None
                assert (release.image, release.digest, release.created_by) == (
                    f"{repository}:2.0.0",
                    digest,
                    "registry",
                )
                assert session.scalar(select(Release).where(Release.version == "2.0.1")) is None
    finally:
        app.state.runtime.close()
