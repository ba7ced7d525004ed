"""The catalog's read contract for other domains: ServiceRef, service_ref and service_refs, on SQLite and
PostgreSQL; and the public surface of catalog.service, which hands out schemas, never ORM rows."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import Resource
from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.schemas import ServiceFilters, ServiceRef
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.errors import NotFound
from tests.conftest import TEST_ACTOR

CHECKOUT = ServiceRef(
    slug="checkout",
    kind="component",
    title="Checkout",
    owner="shop",
    tier=1,
    lifecycle="production",
    image_repository="registry.example.com/shop/checkout",
)


@pytest.fixture
def services(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(sessions) as session:
        catalog.create(session, TEST_ACTOR, "team", {"slug": "shop", "name": "Shop"}, now=clock.now())
        for fields in (
            {
                "slug": "checkout",
                "title": "Checkout",
                "owner": "shop",
                "tier": 1,
                "image": CHECKOUT.image_repository,
            },
            {"slug": "cart", "owner": "shop", "tier": 3, "lifecycle": "experimental"},
            {"slug": "ledger", "owner": "payments"},
        ):
            catalog.create(session, TEST_ACTOR, "service", fields, now=clock.now())


@pytest.mark.usefixtures("services")
def test_service_ref_holds_what_other_domains_need(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert catalog.service_ref(session, "Checkout") == CHECKOUT


def test_a_ref_is_the_policy_resource_of_a_change_to_the_service() -> None:
    assert CHECKOUT.resource() == Resource(type="service", key="checkout", team="shop", tier=1)
    assert CHECKOUT.resource(environment="production", production=True) == Resource(
        type="service", key="checkout", team="shop", tier=1, environment="production", production=True
    )


@pytest.mark.usefixtures("services")
def test_an_unknown_service_is_not_found_with_suggestions(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(NotFound) as raised:
        catalog.service_ref(session, "checkou")

    assert (raised.value.code, raised.value.message) == (
        "catalog.service_not_found",
        "service 'checkou' is not in the catalog; did you mean 'checkout'?",
    )
    assert raised.value.details["suggestions"][0] == "checkout"


@pytest.mark.usefixtures("services")
def test_a_kind_narrows_the_look_up(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert catalog.service_ref(session, "checkout", "component") == CHECKOUT
        with pytest.raises(NotFound) as raised:
            catalog.service_ref(session, "checkout", "api")
    assert raised.value.message == "api 'checkout' is not in the catalog"


@pytest.mark.usefixtures("services")
def test_service_refs_reads_many_at_once_and_leaves_unknown_slugs_out(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        found = catalog.service_refs(session, ["checkout", "CART", "ledger", "nope"])

    assert sorted(found) == ["cart", "checkout", "ledger"]
    assert found["checkout"] == CHECKOUT
    assert (found["cart"].tier, found["cart"].lifecycle, found["cart"].image_repository) == (
        3,
        "experimental",
        None,
    )
    assert found["ledger"].resource() == Resource(type="service", key="ledger", team="payments")


@pytest.mark.usefixtures("services")
def test_service_filters_are_given_by_keyword(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(TypeError):
        ServiceFilters("shop")  # type: ignore[call-arg]
    with sessions() as session:
        page = catalog.list_services(session, ServiceFilters(owner="shop", tier=3))
    assert [s.slug for s in page.items] == ["cart"]


def test_catalog_service_exports_contracts_not_rows() -> None:
    exported = set(catalog.__all__)
    assert {"ServiceRef", "ServiceFilters", "service_ref", "service_refs"} <= exported
    rows = {"find_row", "resource_of", "get_service", "get_team", "get_person", "get_system"}
    assert exported & (rows | {"service_resource", "service_resources"}) == set()
