"""Deploy status changes through the one guarded transition, on SQLite and PostgreSQL: the UPDATE ... WHERE
status = :from and its deploy_events row, racing movers of one deploy (exactly one wins), the first event
of a new deploy, the live version after a rollback, and the rules the service holds (batch limit, rights).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access.schemas import Actor, GlobalRole, TeamRoleName
from quarterdeck.catalog import service as catalog
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.deploys import service as deploys
from quarterdeck.deploys import transitions
from quarterdeck.deploys.models import Deploy, DeployEvent
from quarterdeck.deploys.schemas import DeployReport, EnvironmentIn
from quarterdeck.deploys.states import DeployStatus
from quarterdeck.errors import Forbidden, Invalid, InvalidTransition, NotFound
from tests.conftest import TEST_ACTOR

RUNNING, SUCCEEDED, FAILED, ROLLED_BACK = (
    DeployStatus.RUNNING,
    DeployStatus.SUCCEEDED,
    DeployStatus.FAILED,
    DeployStatus.ROLLED_BACK,
)
RACERS = 50


@pytest.fixture
def shop(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    """Staging and production, team shop and its tier-1 service checkout, made through the services."""
    with transaction(sessions) as session:
        for position, (slug, production) in enumerate((("staging", False), ("production", True)), start=1):
            body = EnvironmentIn(name=slug.title(), position=position, production=production)
            deploys.put_environment(session, TEST_ACTOR, slug, body, at=clock.now())
        catalog.create(session, TEST_ACTOR, "team", {"slug": "shop", "name": "Shop"}, now=clock.now())
        fields = {"slug": "checkout", "owner": "shop", "tier": 1}
        catalog.create(session, TEST_ACTOR, "service", fields, now=clock.now())


def reported(
    sessions: sessionmaker[Session],
    clock: FrozenClock,
    status: DeployStatus,
    *,
    run: str = "ci:run:1",
    version: str = "1.0.0",
    started_minutes_ago: int = 30,
) -> int:
    """A deploy of checkout to production, reported by CI; its id."""
    started = clock.now() - timedelta(minutes=started_minutes_ago)
    body = DeployReport(
        id=run,
        service="checkout",
        environment="production",
        version=version,
        status=status,
        started_at=started,
        finished_at=None if status is RUNNING else started + timedelta(minutes=5),
    )
    with transaction(sessions) as session:
        [result] = deploys.report(session, TEST_ACTOR, [body], at=clock.now())
    assert result.outcome == "created"
    return result.deploy.id


def timeline(sessions: sessionmaker[Session], deploy_id: int) -> list[tuple[str | None, str, str, str]]:
    """(from, to, actor, reason) of each deploy_events row of the deploy, oldest first."""
    with sessions() as session:
        rows = session.scalars(
            select(DeployEvent).where(DeployEvent.deploy_id == deploy_id).order_by(DeployEvent.id)
        )
        return [(e.from_status, e.to_status, e.actor, e.reason) for e in rows]


def stored(sessions: sessionmaker[Session], deploy_id: int) -> tuple[str, int]:
    """(status, version) of the deploy row."""
    with sessions() as session:
        deploy = session.get_one(Deploy, deploy_id)
        return deploy.status, deploy.version


@pytest.mark.usefixtures("shop")
def test_of_50_racing_moves_of_a_running_deploy_exactly_one_wins(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    deploy_id = reported(sessions, clock, RUNNING)
    wanted = [(SUCCEEDED, FAILED, ROLLED_BACK)[n % 3] for n in range(RACERS)]
    start = threading.Barrier(RACERS, timeout=60)

    def attempt(to: DeployStatus) -> DeployStatus | InvalidTransition:
        start.wait()
        try:
            with transaction(sessions) as session:
                moved = deploys.move_deploy(
                    session,
                    TEST_ACTOR,
                    deploy_id,
                    expected=RUNNING,
                    to=to,
                    reason="step done",
                    at=clock.now(),
                )
            return moved.status
        except InvalidTransition as refused:
            return refused

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        outcomes = list(pool.map(attempt, wanted))

    [winner] = [outcome for outcome in outcomes if isinstance(outcome, DeployStatus)]
    refusals = [(to, outcome) for to, outcome in zip(wanted, outcomes, strict=True) if outcome is not winner]
    assert len(refusals) == RACERS - 1
    for to, refused in refusals:
        assert isinstance(refused, InvalidTransition)
        assert refused.code == "deploys.bad_transition"
        assert refused.message == (
            f"deploy 'ci:run:1' is {winner.value}; it cannot become {to.value} "
            "(it was running when this change was asked, and another change came first)"
        )
        assert refused.details == {"from": winner.value, "to": to.value, "expected": "running"}
    assert stored(sessions, deploy_id) == (winner.value, 2)
    assert timeline(sessions, deploy_id) == [
        (None, "running", "system:tests", "reported by ci"),
        ("running", winner.value, "system:tests", "step done"),
    ]


@pytest.mark.usefixtures("shop")
def test_a_move_is_one_guarded_update_and_its_event(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    deploy_id = reported(sessions, clock, RUNNING)
    finished = clock.now()

    with transaction(sessions) as session:
        moved = transitions.move(
            session,
            deploy_id,
            from_=RUNNING,
            to=SUCCEEDED,
            finished_at=finished,
            at=clock.now(),
            actor="pipeline",
            reason="canary healthy",
        )
        assert (moved.status, moved.finished_at, moved.version) == ("succeeded", finished, 2)

    # a second mover that still believes the deploy is running changes nothing
    with pytest.raises(InvalidTransition) as raised, transaction(sessions) as session:
        transitions.move(
            session,
            deploy_id,
            from_=RUNNING,
            to=FAILED,
            finished_at=None,
            at=clock.now(),
            actor="x",
            reason="y",
        )
    assert raised.value.details == {"from": "succeeded", "to": "failed", "expected": "running"}
    assert stored(sessions, deploy_id) == ("succeeded", 2)
    assert timeline(sessions, deploy_id) == [
        (None, "running", "system:tests", "reported by ci"),
        ("running", "succeeded", "pipeline", "canary healthy"),
    ]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        # a failure is final
        (FAILED, SUCCEEDED),
        # a finished deploy never runs again
        (SUCCEEDED, RUNNING),
        # a rollback is final
        (ROLLED_BACK, FAILED),
    ],
)
@pytest.mark.usefixtures("shop")
def test_a_move_the_rules_forbid_is_refused_naming_the_status(
    sessions: sessionmaker[Session], clock: FrozenClock, first: DeployStatus, then: DeployStatus
) -> None:
    deploy_id = reported(sessions, clock, first)

    with pytest.raises(InvalidTransition) as raised, transaction(sessions) as session:
        deploys.move_deploy(
            session, TEST_ACTOR, deploy_id, expected=first, to=then, reason="", at=clock.now()
        )

    assert raised.value.message == f"deploy 'ci:run:1' is {first.value}; it cannot become {then.value}"
    assert raised.value.details == {"from": first.value, "to": then.value}
    assert stored(sessions, deploy_id) == (first.value, 1)
    assert timeline(sessions, deploy_id) == [(None, first.value, "system:tests", "reported by ci")]


@pytest.mark.usefixtures("shop")
def test_a_batch_of_new_deploys_records_each_first_event(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    started = clock.now() - timedelta(minutes=10)
    bodies = [
        DeployReport(
            id=f"ci:{n}",
            service="checkout",
            environment=env,
            version="2.0.0",
            status=status,
            started_at=started,
        )
        for n, (env, status) in enumerate((("staging", RUNNING), ("production", RUNNING)))
    ]
    with transaction(sessions) as session:
        results = deploys.report(session, TEST_ACTOR, bodies, at=clock.now())
        views = [deploys.deploy_view(session, result.deploy.id) for result in results]

    assert [[(e.from_status, e.to_status, e.at) for e in view.events] for view in views] == [
        [(None, RUNNING, clock.now())],
        [(None, RUNNING, clock.now())],
    ]


@pytest.mark.usefixtures("shop")
def test_rolling_back_the_live_deploy_makes_the_one_before_it_live_again(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    older = reported(sessions, clock, SUCCEEDED, run="ci:1", version="1.0.0", started_minutes_ago=60)
    newer = reported(sessions, clock, SUCCEEDED, run="ci:2", version="1.1.0", started_minutes_ago=30)

    def live_in_production() -> str | None:
        with sessions() as session:
            found = deploys.live_of(session, "checkout", registry=None).environments
        deploy = next(e.deploy for e in found if e.environment.slug == "production")
        return deploy.release.version if deploy else None

    assert live_in_production() == "1.1.0"
    for deploy_id, live_after in ((newer, "1.0.0"), (older, None)):
        with transaction(sessions) as session:
            deploys.move_deploy(
                session,
                TEST_ACTOR,
                deploy_id,
                expected=SUCCEEDED,
                to=ROLLED_BACK,
                reason="bad",
                at=clock.now(),
            )
        assert live_in_production() == live_after


@pytest.mark.usefixtures("shop")
def test_only_a_member_of_the_owning_team_moves_its_deploys(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    deploy_id = reported(sessions, clock, RUNNING)
    outsider = Actor(
        kind="user",
        name="pat@example.com",
        role=GlobalRole.MEMBER,
        user_id=7,
        teams={"payments": TeamRoleName.MEMBER},
    )

    with pytest.raises(Forbidden) as raised, transaction(sessions) as session:
        deploys.move_deploy(
            session, outsider, deploy_id, expected=RUNNING, to=FAILED, reason="", at=clock.now()
        )

    assert raised.value.message == "only members of team 'shop' may change the service 'checkout'"
    assert stored(sessions, deploy_id) == ("running", 1)


@pytest.mark.usefixtures("shop")
def test_moving_a_deploy_that_does_not_exist_is_not_found(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with pytest.raises(NotFound) as raised, transaction(sessions) as session:
        deploys.move_deploy(session, TEST_ACTOR, 4242, expected=RUNNING, to=FAILED, reason="", at=clock.now())
    assert raised.value.code == "deploys.unknown_deploy"


@pytest.mark.usefixtures("shop")
def test_the_service_refuses_a_batch_of_more_than_1000_reports(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    started = clock.now() - timedelta(minutes=10)
    bodies = [
        DeployReport(
            id=f"ci:{n}",
            service="checkout",
            environment="staging",
            version="1.0.0",
            status=RUNNING,
            started_at=started,
        )
        for n in range(deploys.MAX_BATCH + 1)
    ]

    with pytest.raises(Invalid) as raised, transaction(sessions) as session:
        deploys.report(session, TEST_ACTOR, bodies, at=clock.now())

    assert (raised.value.code, raised.value.message) == (
        "deploys.batch_too_big",
        "a batch holds at most 1000 reports, not 1001",
    )
    with sessions() as session:
        assert session.scalars(select(Deploy.id)).all() == []
