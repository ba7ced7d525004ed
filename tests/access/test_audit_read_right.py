"""Reading the audit log is an admin's right, checked by the service functions themselves (not only by
the routes that call them), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor, GlobalRole, Scope, TeamRoleName
from quarterdeck.clock import FrozenClock
from quarterdeck.db import transaction
from quarterdeck.errors import Forbidden
from tests.conftest import TEST_ACTOR

MEMBER = Actor(
    kind="user",
    name="mia@shop.example",
    role=GlobalRole.MEMBER,
    user_id=5,
    teams={"shop": TeamRoleName.OWNER},
)
ADMIN = Actor(kind="user", name="ada@corp.example", role=GlobalRole.ADMIN, user_id=6, all_teams=True)
ADMIN_READ_TOKEN = Actor(
    kind="token",
    name="dash",
    role=GlobalRole.ADMIN,
    token_id=1,
    all_teams=True,
    scopes=frozenset({Scope.READ}),
)


@pytest.fixture
def logged(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(sessions) as session:
        access.record(session, TEST_ACTOR, "service.update", target=("service", "checkout"), at=clock.now())


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        # a member, even one owning a team
        (MEMBER, "only admins may do this"),
        # an admin's token made for reading only
        (ADMIN_READ_TOKEN, "this token lacks the 'admin' scope"),
    ],
)
@pytest.mark.usefixtures("logged")
def test_the_audit_log_is_refused_by_its_service_functions(
    sessions: sessionmaker[Session], who: Actor, reason: str
) -> None:
    opened: list[Session] = []

    def counted() -> Session:
        opened.append(sessions())
        return opened[-1]

    with sessions() as session:
        with pytest.raises(Forbidden) as entries:
            access.audit_entries(session, who, access.AuditFilters())
        with pytest.raises(Forbidden) as verification:
            access.audit_verification(session, who)
    # the export is refused when asked for, before a session is opened or a line streamed
    with pytest.raises(Forbidden) as export:
        access.audit_export(who, counted, access.AuditFilters())

    refusals = [entries, verification, export]
    assert [refused.value.message for refused in refusals] == [reason] * 3
    assert opened == []


@pytest.mark.usefixtures("logged")
def test_an_admin_reads_searches_exports_and_verifies_the_log(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        entries, total = access.audit_entries(session, ADMIN, access.AuditFilters(action="service.update"))
        verification = access.audit_verification(session, ADMIN)

    lines = list(access.audit_export(ADMIN, sessions, access.AuditFilters()))

    assert ([e.target_id for e in entries], total) == (["checkout"], 1)
    assert (verification.ok, verification.checked) == (True, 1)
    assert [json.loads(line)["action"] for line in lines] == ["service.update"]
