"""The one answer to "may this actor do this?": `can(actor, action, resource)`. Pure: no I/O.

Roles: global (admin, member, viewer) and per team (owner, member). A token is further limited to its
scopes. Every route, page, CLI command and worker asks here, through its domain's service.
"""

from __future__ import annotations

from collections.abc import Callable

from quarterdeck.access.schemas import Actor, Decision, GlobalRole, Resource, Scope, TeamRoleName
from quarterdeck.errors import Forbidden

APPROVAL_TIERS = frozenset({1})
"""Tiers whose production changes need a second person's approval."""

SCOPE_OF: dict[str, Scope] = {
    "catalog.read": Scope.READ,
    "catalog.create": Scope.WRITE_CATALOG,
    "catalog.edit": Scope.WRITE_CATALOG,
    "catalog.delete": Scope.WRITE_CATALOG,
    "catalog.import": Scope.ADMIN,
    "deploy": Scope.DEPLOY,
    "deploy.start": Scope.DEPLOY,
    "deploy.read": Scope.READ,
    "approval.request": Scope.DEPLOY,
    "approval.decide": Scope.DEPLOY,
    "page": Scope.PAGE,
    "flags.edit": Scope.FLAGS,
    "pipelines.edit": Scope.DEPLOY,
    "tokens.manage": Scope.ADMIN,
    "admin": Scope.ADMIN,
    "audit.read": Scope.ADMIN,
    "settings.edit": Scope.ADMIN,
}


def needs_second_approval(resource: Resource) -> bool:
    """Two-person rule: production changes of a tier in APPROVAL_TIERS need another person's yes."""
    return resource.production and resource.tier in APPROVAL_TIERS


def _allow(reason: str = "allowed") -> Decision:
    return Decision(True, reason)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def _team_role(actor: Actor, team: str | None) -> TeamRoleName | None:
    if team is None:
        return None
    return actor.teams.get(team)


def _in_team(actor: Actor, resource: Resource) -> Decision:
    if actor.all_teams:
        return _allow()
    if resource.team is None:
        return _deny(f"the {resource.type} {resource.key!r} has no owning team: only admins may change it")
    if _team_role(actor, resource.team) is not None:
        return _allow()
    return _deny(f"only members of team {resource.team!r} may change the {resource.type} {resource.key!r}")


def _edit_catalog(actor: Actor, resource: Resource) -> Decision:
    if resource.type == "person" and actor.user_id is not None and resource.owner_user_id == actor.user_id:
        return _allow()
    if resource.type == "team":
        if actor.all_teams or _team_role(actor, resource.key) is TeamRoleName.OWNER:
            return _allow()
        return _deny(f"only owners of team {resource.key!r} and admins may change it")
    if resource.type == "person":
        return _deny("only admins may change other people's entries")
    return _in_team(actor, resource)


def _decide_approval(actor: Actor, resource: Resource) -> Decision:
    if actor.user_id is None:
        return _deny("approvals need a person: a service token or the server cannot approve")
    if resource.owner_user_id == actor.user_id:
        return _deny("you asked for this change: a second person must approve it")
    return _in_team(actor, resource)


def _edit_pipelines(actor: Actor, resource: Resource) -> Decision:
    """A team's pipelines (its own, its services') are its owners'; the organisation's defaults (a
    resource of type "pipeline") are admins' only."""
    if resource.type == "pipeline":
        return _deny("only admins may change the organisation's default pipelines")
    if actor.all_teams:
        return _allow()
    if resource.team is None:
        return _deny(
            f"the {resource.type} {resource.key!r} has no owning team: only admins may change its pipelines"
        )
    if _team_role(actor, resource.team) is TeamRoleName.OWNER:
        return _allow()
    return _deny(
        f"only owners of team {resource.team!r} and admins may change the pipelines of the "
        f"{resource.type} {resource.key!r}"
    )


def _read(actor: Actor, resource: Resource) -> Decision:
    return _allow()


def _signed_in(actor: Actor, resource: Resource) -> Decision:
    return _allow() if actor.signed_in else _deny("sign in first")


def _admin(actor: Actor, resource: Resource) -> Decision:
    return _allow() if actor.role is GlobalRole.ADMIN else _deny("only admins may do this")


def _tokens(actor: Actor, resource: Resource) -> Decision:
    if actor.role is GlobalRole.ADMIN:
        return _allow()
    if actor.user_id is not None and resource.owner_user_id == actor.user_id:
        return _allow()
    return _deny("you may manage only your own tokens")


RULES: dict[str, Callable[[Actor, Resource], Decision]] = {
    "catalog.read": _read,
    "deploy.read": _read,
    "catalog.create": _edit_catalog,
    "catalog.edit": _edit_catalog,
    "catalog.delete": _edit_catalog,
    "catalog.import": _admin,
    "deploy": _in_team,
    "deploy.start": _in_team,
    "approval.request": _in_team,
    "approval.decide": _decide_approval,
    "page": _signed_in,
    "flags.edit": _in_team,
    "pipelines.edit": _edit_pipelines,
    "tokens.manage": _tokens,
    "admin": _admin,
    "audit.read": _admin,
    "settings.edit": _admin,
}

NEEDS_WRITER = frozenset(RULES) - {"catalog.read", "deploy.read", "page", "tokens.manage"}
"""Actions a viewer may never do, whatever team they are in."""


def can(actor: Actor, action: str, resource: Resource | None = None) -> Decision:
    """Whether `actor` may do `action` on `resource`, with the reason a refusal can show."""
    rule = RULES.get(action)
    if rule is None:
        raise ValueError(f"unknown action {action!r}")
    resource = resource or Resource(type="portal")
    if not actor.signed_in and action != "catalog.read" and action != "deploy.read":
        return _deny("sign in first")
    scope = SCOPE_OF[action]
    if (
        actor.scopes is not None
        and scope is not Scope.READ
        and scope not in actor.scopes
        and Scope.ADMIN not in actor.scopes
    ):
        return _deny(f"this token lacks the {scope.value!r} scope")
    if actor.role is GlobalRole.VIEWER and action in NEEDS_WRITER:
        return _deny("viewers may only read")
    if actor.role is GlobalRole.ADMIN and action != "approval.decide":
        return _allow("admin")
    return rule(actor, resource)


def require(actor: Actor, action: str, resource: Resource | None = None) -> None:
    """Raise Forbidden, with the reason, unless `actor` may do `action`."""
    decision = can(actor, action, resource)
    if not decision:
        raise Forbidden(decision.reason, code="access.forbidden", details={"action": action})
