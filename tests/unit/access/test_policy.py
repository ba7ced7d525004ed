"""policy.can: every kind of actor against every kind of action, and the two-person rule. Pure: no I/O.

The actors are built the way `users.actor_for` and `tokens.token_actor` build them, so a change in the
policy's reading of an actor shows here first.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from quarterdeck.access import policy
from quarterdeck.access.policy import can, needs_second_approval, require
from quarterdeck.access.schemas import Actor, GlobalRole, Resource, Scope, TeamRoleName
from quarterdeck.errors import Forbidden

OWNER, MEMBER = TeamRoleName.OWNER, TeamRoleName.MEMBER
SOMEONE_ELSE = 99
"""A user id no actor below has."""

ACTORS: dict[str, Actor] = {
    "admin": Actor(
        kind="user",
        name="ada@example.com",
        role=GlobalRole.ADMIN,
        user_id=1,
        all_teams=True,
        via_session=True,
    ),
    "team-owner": Actor(
        kind="user", name="olga@example.com", role=GlobalRole.MEMBER, user_id=2, teams={"payments": OWNER}
    ),
    "team-member": Actor(
        kind="user", name="max@example.com", role=GlobalRole.MEMBER, user_id=3, teams={"payments": MEMBER}
    ),
    "other-team": Actor(
        kind="user", name="otto@example.com", role=GlobalRole.MEMBER, user_id=4, teams={"search": MEMBER}
    ),
    "viewer": Actor(
        kind="user", name="vic@example.com", role=GlobalRole.VIEWER, user_id=5, teams={"payments": MEMBER}
    ),
    "anonymous": Actor.anonymous("203.0.113.9"),
    # personal tokens of team-member: a token acts as its user, further limited to its scopes
    "read-token": Actor(
        kind="token",
        name="max-read",
        role=GlobalRole.MEMBER,
        user_id=3,
        token_id=10,
        teams={"payments": MEMBER},
        scopes=frozenset({Scope.READ}),
    ),
    "write-token": Actor(
        kind="token",
        name="max-write",
        role=GlobalRole.MEMBER,
        user_id=3,
        token_id=11,
        teams={"payments": MEMBER},
        scopes=frozenset({Scope.WRITE_CATALOG}),
    ),
    # service tokens have no user; one limited to a team, one for the whole organisation
    "team-deploy-token": Actor(
        kind="token",
        name="payments-ci",
        role=GlobalRole.MEMBER,
        token_id=12,
        teams={"payments": MEMBER},
        scopes=frozenset({Scope.DEPLOY}),
    ),
    "org-token": Actor(
        kind="token",
        name="platform-bot",
        role=GlobalRole.MEMBER,
        token_id=13,
        all_teams=True,
        scopes=frozenset({Scope.WRITE_CATALOG, Scope.DEPLOY}),
    ),
    "system": Actor.system("cli"),
}
COLUMNS = list(ACTORS)

ResourceFor = Callable[[Actor], Resource | None]


def fixed(resource: Resource | None) -> ResourceFor:
    return lambda _actor: resource


def own_person(actor: Actor) -> Resource:
    """The actor's own catalog entry, as catalog.service._person_resource hands it over."""
    return Resource(type="person", key="me", owner_user_id=actor.user_id)


def own_request(actor: Actor) -> Resource:
    """An approval request the actor made, for a tier-1 production deploy of a payments service."""
    return Resource(
        type="service",
        key="payments-api",
        team="payments",
        tier=1,
        environment="production",
        production=True,
        owner_user_id=actor.user_id,
    )


def own_token(actor: Actor) -> Resource:
    return Resource(type="token", key="1", owner_user_id=actor.user_id)


OWN_SERVICE = Resource(type="service", key="payments-api", team="payments", tier=2)
OTHER_SERVICE = Resource(type="service", key="search-api", team="search", tier=2)
UNOWNED_SERVICE = Resource(type="service", key="legacy", team=None, tier=3)
PAYMENTS_TEAM = Resource(type="team", key="payments", team="payments")
SOMEONE_ELSES_PERSON = Resource(type="person", key="grace")
OWN_TEAM_DEPLOY = Resource(type="service", key="payments-api", team="payments", tier=2, environment="staging")
OTHER_TEAM_DEPLOY = Resource(type="service", key="search-api", team="search", tier=2, environment="staging")
SOMEONE_ELSES_REQUEST = Resource(
    type="service",
    key="payments-api",
    team="payments",
    tier=1,
    environment="production",
    production=True,
    owner_user_id=SOMEONE_ELSE,
)
SOMEONE_ELSES_TOKEN = Resource(type="token", key="7", owner_user_id=SOMEONE_ELSE)

# + allowed, - refused; one column per actor, in this order:
#   admin, team-owner, team-member, other-team, viewer, anonymous,
#   read-token, write-token, team-deploy-token, org-token, system
MATRIX: list[tuple[str, str, ResourceFor, str]] = [
    # anyone reads the catalog (whether anonymous readers get in is the web layer's setting)
    ("read-catalog", "catalog.read", fixed(None), "+ + + + + + + + + + +"),
    # a team's members edit its services; a read-only token, a deploy-only token and viewers do not
    ("edit-own-team-service", "catalog.edit", fixed(OWN_SERVICE), "+ + + - - - - + - + +"),
    # another team's service is theirs: only its members, admins and org-wide writers
    ("edit-other-team-service", "catalog.edit", fixed(OTHER_SERVICE), "+ - - + - - - - - + +"),
    # a service nobody owns is left to admins (and org-wide automation)
    ("edit-unowned-service", "catalog.edit", fixed(UNOWNED_SERVICE), "+ - - - - - - - - + +"),
    # a team's own entry: its owners, not its plain members
    ("edit-team", "catalog.edit", fixed(PAYMENTS_TEAM), "+ + - - - - - - - + +"),
    # people edit their own person entry (not viewers, nor read-only tokens); user-less tokens have none
    ("edit-own-person", "catalog.edit", own_person, "+ + + + - - - + - - +"),
    # someone else's person entry is for admins only
    ("edit-other-person", "catalog.edit", fixed(SOMEONE_ELSES_PERSON), "+ - - - - - - - - - +"),
    # deploying a team's service: its members and a deploy token of that team (or org-wide)
    ("deploy-own-team", "deploy", fixed(OWN_TEAM_DEPLOY), "+ + + - - - - - + + +"),
    # a team-limited deploy token does not reach another team's service
    ("deploy-other-team", "deploy", fixed(OTHER_TEAM_DEPLOY), "+ - - + - - - - - + +"),
    # asking for an approval needs the same right as deploying
    ("request-approval", "approval.request", fixed(SOMEONE_ELSES_REQUEST), "+ + + - - - - - + + +"),
    # nobody approves their own request: not even an admin or the server
    ("decide-own-request", "approval.decide", own_request, "- - - - - - - - - - -"),
    # a second person of the team (or an admin) decides; tokens without a person and the server never do
    ("decide-others-request", "approval.decide", fixed(SOMEONE_ELSES_REQUEST), "+ + + - - - - - - - -"),
    # people manage their own tokens from a session (viewers too); a token needs the admin scope for it
    ("manage-own-tokens", "tokens.manage", own_token, "+ + + + + - - - - - +"),
    # other people's tokens: admins only
    ("manage-others-tokens", "tokens.manage", fixed(SOMEONE_ELSES_TOKEN), "+ - - - - - - - - - +"),
    # the admin pages
    ("admin", "admin", fixed(None), "+ - - - - - - - - - +"),
    # the audit log is read by admins only
    ("read-audit", "audit.read", fixed(None), "+ - - - - - - - - - +"),
]


def _cases() -> list[object]:
    cases: list[object] = []
    for case, action, resource_for, row in MATRIX:
        marks = row.split()
        assert len(marks) == len(COLUMNS), case
        for name, mark in zip(COLUMNS, marks, strict=True):
            assert mark in "+-", case
            cases.append(pytest.param(name, action, resource_for, mark == "+", id=f"{case}/{name}"))
    return cases


@pytest.mark.parametrize(("actor_name", "action", "resource_for", "allowed"), _cases())
def test_can(actor_name: str, action: str, resource_for: ResourceFor, allowed: bool) -> None:
    actor = ACTORS[actor_name]

    decision = can(actor, action, resource_for(actor))

    assert decision.allowed is allowed, decision.reason
    assert bool(decision) is allowed


@pytest.mark.parametrize(
    ("actor_name", "action", "resource", "reason"),
    [
        # anonymous visitors are asked to sign in before anything but reading
        ("anonymous", "catalog.edit", OWN_SERVICE, "sign in first"),
        # the scope a token lacks is named
        ("read-token", "catalog.edit", OWN_SERVICE, "this token lacks the 'write:catalog' scope"),
        # the team-deploy token has no catalog scope either
        ("team-deploy-token", "catalog.edit", OWN_SERVICE, "this token lacks the 'write:catalog' scope"),
        # a viewer is told they only read, even in their own team
        ("viewer", "catalog.edit", OWN_SERVICE, "viewers may only read"),
        # the owning team is named
        (
            "team-member",
            "catalog.edit",
            OTHER_SERVICE,
            "only members of team 'search' may change the service 'search-api'",
        ),
        # an unowned service says why
        (
            "team-member",
            "catalog.edit",
            UNOWNED_SERVICE,
            "the service 'legacy' has no owning team: only admins may change it",
        ),
        # team entries belong to the team's owners
        (
            "team-member",
            "catalog.edit",
            PAYMENTS_TEAM,
            "only owners of team 'payments' and admins may change it",
        ),
        # other people's person entries
        (
            "team-member",
            "catalog.edit",
            SOMEONE_ELSES_PERSON,
            "only admins may change other people's entries",
        ),
        # the two-person rule binds admins too
        (
            "admin",
            "approval.decide",
            own_request(ACTORS["admin"]),
            "you asked for this change: a second person must approve it",
        ),
        # a service token has no person to approve with
        (
            "team-deploy-token",
            "approval.decide",
            SOMEONE_ELSES_REQUEST,
            "approvals need a person: a service token or the server cannot approve",
        ),
        # the server's own CLI has no person either
        (
            "system",
            "approval.decide",
            SOMEONE_ELSES_REQUEST,
            "approvals need a person: a service token or the server cannot approve",
        ),
        # tokens of other people
        ("team-member", "tokens.manage", SOMEONE_ELSES_TOKEN, "you may manage only your own tokens"),
        # minting tokens with a token needs the admin scope
        (
            "write-token",
            "tokens.manage",
            own_token(ACTORS["write-token"]),
            "this token lacks the 'admin' scope",
        ),
        # admin pages
        ("team-owner", "admin", None, "only admins may do this"),
    ],
)
def test_refusals_say_why(actor_name: str, action: str, resource: Resource | None, reason: str) -> None:
    decision = can(ACTORS[actor_name], action, resource)

    assert (decision.allowed, decision.reason) == (False, reason)


ADMIN_READ_TOKEN = Actor(
    kind="token",
    name="ada-read",
    role=GlobalRole.ADMIN,
    user_id=1,
    token_id=20,
    all_teams=True,
    scopes=frozenset({Scope.READ}),
)
ADMIN_FULL_TOKEN = Actor(
    kind="token",
    name="ada-admin",
    role=GlobalRole.ADMIN,
    user_id=1,
    token_id=21,
    all_teams=True,
    scopes=frozenset({Scope.ADMIN}),
)


@pytest.mark.parametrize(
    ("actor", "action", "resource", "allowed"),
    [
        # an admin's read-only token reads
        (ADMIN_READ_TOKEN, "catalog.read", None, True),
        # ... but does not write: the scope binds admins as well
        (ADMIN_READ_TOKEN, "catalog.edit", OTHER_SERVICE, False),
        # ... nor deploy
        (ADMIN_READ_TOKEN, "deploy", OWN_TEAM_DEPLOY, False),
        # ... nor read the audit log
        (ADMIN_READ_TOKEN, "audit.read", None, False),
        # ... nor mint tokens
        (ADMIN_READ_TOKEN, "tokens.manage", SOMEONE_ELSES_TOKEN, False),
        # the admin scope stands for every other scope
        (ADMIN_FULL_TOKEN, "catalog.edit", OTHER_SERVICE, True),
        # ... deploys included
        (ADMIN_FULL_TOKEN, "deploy", OTHER_TEAM_DEPLOY, True),
        # ... and the audit log
        (ADMIN_FULL_TOKEN, "audit.read", None, True),
        # ... but never one's own approval
        (ADMIN_FULL_TOKEN, "approval.decide", own_request(ADMIN_FULL_TOKEN), False),
    ],
)
def test_admin_tokens_are_limited_by_their_scopes(
    actor: Actor, action: str, resource: Resource | None, allowed: bool
) -> None:
    assert can(actor, action, resource).allowed is allowed


def test_require_raises_forbidden_with_the_reason_and_action() -> None:
    with pytest.raises(Forbidden) as raised:
        require(ACTORS["viewer"], "catalog.edit", OWN_SERVICE)

    assert (raised.value.message, raised.value.code, raised.value.details) == (
        "viewers may only read",
        "access.forbidden",
        {"action": "catalog.edit"},
    )


def test_require_returns_quietly_when_allowed() -> None:
    require(ACTORS["team-member"], "catalog.edit", OWN_SERVICE)


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"^unknown action 'catalog\.destroy'$"):
        can(ACTORS["admin"], "catalog.destroy")


def test_every_action_has_a_scope_and_a_rule() -> None:
    assert set(policy.RULES) == set(policy.SCOPE_OF)


@pytest.mark.parametrize(
    ("resource", "needed"),
    [
        # tier 1 in production: a second person must say yes
        (Resource(type="service", key="pay", tier=1, environment="production", production=True), True),
        # tier 1 outside production ships without one
        (Resource(type="service", key="pay", tier=1, environment="staging", production=False), False),
        # tier 2 in production ships without one
        (Resource(type="service", key="pay", tier=2, environment="production", production=True), False),
        # the least critical tier in production neither
        (Resource(type="service", key="pay", tier=4, environment="production", production=True), False),
    ],
)
def test_needs_second_approval(resource: Resource, needed: bool) -> None:
    assert needs_second_approval(resource) is needed
