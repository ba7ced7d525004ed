"""Change requests of any domain, through access's service functions, on SQLite and PostgreSQL: a
production flag change of a tier-1 service waits for a second person, a tier-3 one does not, nobody
approves their own, and every answer is judged against the resource as its owning domain says it is now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.schemas import (
    Actor,
    ChangeRequestIn,
    ChangeRequestOut,
    GlobalRole,
    Resource,
    TeamRoleName,
)
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.errors import Forbidden, Invalid, InvalidTransition, NotFound


def member(user_id: int, name: str, team: str) -> Actor:
    return Actor(
        kind="user", name=name, role=GlobalRole.MEMBER, user_id=user_id, teams={team: TeamRoleName.MEMBER}
    )


ALICE = member(1, "alice@shop.example", "shop")
BOB = member(2, "bob@shop.example", "shop")
PAT = member(3, "pat@payments.example", "payments")


def checkout(tier: int, *, production: bool = True) -> Resource:
    environment = "production" if production else "staging"
    return Resource(
        type="service", key="checkout", team="shop", tier=tier, environment=environment, production=production
    )


def flag_change(resource: Resource) -> ChangeRequestIn:
    return ChangeRequestIn(
        action="flag.change",
        resource=resource,
        summary="new-checkout on for everyone",
        details={"flag": "new-checkout", "variant": "on"},
    )


def ask(sessions: sessionmaker[Session], clock: FrozenClock, request: ChangeRequestIn) -> ChangeRequestOut:
    with transaction(sessions) as session:
        return access.ask_change(session, ALICE, request, at=clock.now())


def decide(
    sessions: sessionmaker[Session],
    clock: FrozenClock,
    who: Actor,
    request_id: int,
    now: access.ResourcesNow | None = None,
) -> ChangeRequestOut:
    with transaction(sessions) as session:
        return access.decide_change(
            session, who, request_id, approve=True, reason="ok", at=clock.now(), now=now
        )


@pytest.mark.parametrize(
    ("resource", "status"),
    [
        # a tier-1 service in production: a second person must say yes
        (checkout(1), "pending"),
        # a tier-3 service in production: nobody else needs to
        (checkout(3), "not_required"),
        # a tier-1 service outside production: nobody else needs to
        (checkout(1, production=False), "not_required"),
    ],
)
def test_a_flag_change_waits_only_for_tier_1_production(
    sessions: sessionmaker[Session], clock: FrozenClock, resource: Resource, status: str
) -> None:
    asked = ask(sessions, clock, flag_change(resource))

    assert asked.model_dump(exclude={"id", "requested_at"}) == {
        "action": "flag.change",
        "resource_type": "service",
        "resource_key": "checkout",
        "service": "checkout",
        "team": "shop",
        "tier": resource.tier,
        "environment": resource.environment,
        "production": resource.production,
        "version": None,
        "summary": "new-checkout on for everyone",
        "details": {"flag": "new-checkout", "variant": "on"},
        "status": status,
        "requested_by": "alice@shop.example",
        "decided_by": None,
        "decided_at": None,
        "reason": None,
    }
    with sessions() as session:
        assert access.change_request(session, asked.id) == asked


def test_the_one_who_asked_cannot_approve_and_a_teammate_decides_once(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    asked = ask(sessions, clock, flag_change(checkout(1)))
    refusals = [
        (ALICE, "you asked for this change: a second person must approve it"),
        (PAT, "only members of team 'shop' may change the service 'checkout'"),
    ]
    for who, reason in refusals:
        with pytest.raises(Forbidden) as refused:
            decide(sessions, clock, who, asked.id)
        assert refused.value.message == reason

    approved = decide(sessions, clock, BOB, asked.id)

    assert (approved.status, approved.decided_by, approved.reason) == ("approved", "bob@shop.example", "ok")
    with pytest.raises(InvalidTransition) as twice:
        decide(sessions, clock, BOB, asked.id)
    assert twice.value.details == {"status": "approved"}
    with sessions() as session:
        actions = [e.action for e in access.entries_for(session, target=("approval", str(asked.id)))]
    assert actions == ["approval.approve", "approval.request"]


def test_a_request_is_judged_against_its_resource_as_it_is_now(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    asked = ask(sessions, clock, flag_change(checkout(3)))
    seen: list[list[int]] = []

    def raised_to_tier_1(requests: Sequence[ChangeRequestOut]) -> Mapping[int, Resource]:
        seen.append([request.id for request in requests])
        return {request.id: checkout(1) for request in requests}

    with sessions() as session:
        assert access.change_request(session, asked.id).status == "not_required"
        assert access.change_request(session, asked.id, now=raised_to_tier_1).status == "pending"
        listed = access.change_requests(session, status="pending", now=raised_to_tier_1)
        assert [request.id for request in listed] == [asked.id]
        assert access.change_requests(session, status="pending") == []
        _, bob_decides = access.change_requests_for(session, BOB, now=raised_to_tier_1)
        _, alice_decides = access.change_requests_for(session, ALICE, now=raised_to_tier_1)
    assert (bob_decides, alice_decides) == ({asked.id}, set())

    approved = decide(sessions, clock, BOB, asked.id, now=raised_to_tier_1)

    assert (approved.status, approved.tier) == ("approved", 1)
    assert seen == [[asked.id]] * 5


def test_a_request_about_something_else_than_a_service(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    pipeline = Resource(
        type="pipeline", key="checkout/canary", team="shop", tier=1, environment="production", production=True
    )
    override = ChangeRequestIn(action="pipeline.override", resource=pipeline, details={"skip": ["analysis"]})

    asked = ask(sessions, clock, override)
    ask(sessions, clock, flag_change(checkout(1)))

    assert (asked.resource_type, asked.resource_key, asked.service, asked.status) == (
        "pipeline",
        "checkout/canary",
        None,
        "pending",
    )
    with sessions() as session:
        found = access.change_requests(session, resource_type="pipeline", resource_key="checkout/canary")
    assert [request.id for request in found] == [asked.id]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        # an action is the asking domain's lower-case name
        (ChangeRequestIn(action="Flag Change", resource=checkout(1)), "action"),
        # a resource needs a key
        (ChangeRequestIn(action="flag.change", resource=Resource(type="service")), "resource.key"),
    ],
)
def test_a_malformed_request_is_refused(
    sessions: sessionmaker[Session], clock: FrozenClock, request_: ChangeRequestIn, field: str
) -> None:
    with pytest.raises(Invalid) as raised:
        ask(sessions, clock, request_)

    assert (raised.value.code, [d["field"] for d in raised.value.details]) == ("approval.invalid", [field])
    with sessions() as session:
        assert access.change_requests(session) == []


def test_a_request_that_does_not_exist_is_not_found(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(NotFound) as raised:
        access.change_request(session, 4242)
    assert (raised.value.code, raised.value.message) == ("approval.unknown", "no approval request 4242")
