"""The names suggested for one the catalog does not know, on SQLite and PostgreSQL, and how they are said."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.catalog import service as catalog
from quarterdeck.catalog.suggest import closest_names, did_you_mean
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from tests.conftest import TEST_ACTOR


@pytest.fixture
def services(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(sessions) as session:
        catalog.create(session, TEST_ACTOR, "team", {"slug": "shop", "name": "Shop"}, now=clock.now())
        for fields in (
            {"slug": "checkout-api", "owner": "shop"},
            {"slug": "checkout-worker", "owner": "shop"},
            {"slug": "paypal-bridge", "owner": "shop", "description": "Checkout API calls to PayPal."},
        ):
            catalog.create(session, TEST_ACTOR, "service", fields, now=clock.now())


SUGGESTED: list[tuple[str, list[str]]] = [
    # one letter missing: the closest first, then what shares its words
    ("chekout-api", ["checkout-api", "checkout-worker"]),
    # a word too short for search to correct: only whole names spelt alike find it
    ("checkout-apo", ["checkout-api", "checkout-worker"]),
    # the beginning of names
    ("checkout", ["checkout-api", "checkout-worker"]),
    # nothing alike; paypal-bridge's description has the words, but it is no spelling of them
    ("zzqqxx", []),
]
"""(an unknown name, the services suggested)."""


@pytest.mark.usefixtures("services")
@pytest.mark.parametrize(("name", "suggested"), SUGGESTED)
def test_the_names_spelt_most_alike_are_suggested(
    sessions: sessionmaker[Session], name: str, suggested: list[str]
) -> None:
    with sessions() as session:
        assert closest_names(session, name, entity_type="service") == suggested


@pytest.mark.usefixtures("services")
def test_a_search_hit_by_its_description_is_not_suggested(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert "paypal-bridge" not in closest_names(session, "chekout api", entity_type="service")


@pytest.mark.parametrize(
    ("names", "said"),
    [
        ([], ""),
        (["checkout"], "; did you mean 'checkout'?"),
        (["checkout", "cart"], "; did you mean 'checkout' or 'cart'?"),
        (["checkout", "cart", "catalog"], "; did you mean 'checkout', 'cart' or 'catalog'?"),
    ],
)
def test_did_you_mean_lists_the_names(names: list[str], said: str) -> None:
    assert did_you_mean(names) == said
