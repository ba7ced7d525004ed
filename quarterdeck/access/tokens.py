"""API tokens: shown once, stored as a SHA-256, limited by scopes and an expiry, revocable."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from quarterdeck.access import audit, policy
from quarterdeck.access.models import ApiToken, User
from quarterdeck.access.schemas import (
    Actor,
    CreatedToken,
    GlobalRole,
    Resource,
    Scope,
    TeamRoleName,
    TokenOut,
)
from quarterdeck.access.users import actor_for, find_user, hash_secret
from quarterdeck.errors import Invalid, NotFound, Unauthenticated

TOKEN_PREFIX = "qd_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token, so reads do not turn into writes."""
DURATION = re.compile(r"^(\d{1,5})([hdw])$")
MAX_EXPIRY = timedelta(days=366)


def parse_expiry(text: str | None, *, now: datetime) -> datetime | None:
    """`30d`, `12h`, `8w` from now, or `never`; anything else is an error naming the value."""
    if text is None or text.strip().lower() == "never":
        return None
    match = DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise Invalid(
            f"expiry {text!r} is not a duration like 12h, 30d or 8w (or 'never')",
            code="access.bad_expiry",
            details=[{"field": "expires", "message": "expected 12h, 30d, 8w or never"}],
        )
    amount, unit = int(match.group(1)), match.group(2)
    delta = {"h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
    if delta > MAX_EXPIRY:
        raise Invalid(f"expiry {text!r} is longer than a year", code="access.bad_expiry")
    return now + delta


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    scopes: set[Scope] = set()
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                scopes.add(Scope(part))
            except ValueError:
                known = ", ".join(s.value for s in Scope)
                raise Invalid(
                    f"unknown scope {part!r}: expected one of {known}",
                    code="access.bad_scope",
                    details=[{"field": "scopes", "message": f"unknown scope {part!r}"}],
                ) from None
    if not scopes:
        raise Invalid("a token needs at least one scope", code="access.bad_scope")
    return frozenset(scopes)


def scopes_offered(role: GlobalRole) -> list[Scope]:
    """The scopes a personal token of someone with `role` can carry: admin only for admins."""
    return [scope for scope in Scope if scope is not Scope.ADMIN or role is GlobalRole.ADMIN]


def token_out(session: Session, token: ApiToken, *, at: datetime) -> TokenOut:
    user = session.get(User, token.user_id) if token.user_id else None
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        scopes=sorted(Scope(s) for s in token.scopes),
        user=user.email if user else None,
        team=token.team_slug,
        created_by=token.created_by,
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
        active=token.revoked_at is None and (token.expires_at is None or token.expires_at > at),
    )


def create_token(
    session: Session,
    actor: Actor,
    *,
    name: str,
    scopes: Iterable[str],
    user: str | None = None,
    service: bool = False,
    team: str | None = None,
    expires: str | None = "90d",
    at: datetime,
) -> CreatedToken:
    """A personal token acts as its user (never more than the user may do); a service token has no
    user, is made by admins, and acts within its scopes for one team or, without one, for all. A
    team-limited token is never an admin, whatever its scopes: its `admin` scope stands for every
    scope within that team."""
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid("a token needs a name of 1 to 200 characters", code="access.bad_token_name")
    wanted = parse_scopes(scopes)
    owner: User | None = None
    if service:
        policy.require(actor, "admin")
    else:
        if user and actor.role is not GlobalRole.ADMIN:
            # Asked before the lookup, so the answer never tells a non-admin who has an account.
            mine = session.get(User, actor.user_id) if actor.user_id else None
            if mine is None or mine.email != user.strip().lower():
                policy.require(actor, "tokens.manage", Resource(type="token"))
        owner = (
            find_user(session, user)
            if user
            else (session.get(User, actor.user_id) if actor.user_id else None)
        )
        if owner is None:
            raise Invalid(
                "a personal token needs a user: pass one, or make a service token", code="access.no_user"
            )
        policy.require(actor, "tokens.manage", Resource(type="token", owner_user_id=owner.id))
        if Scope.ADMIN in wanted and owner.role != GlobalRole.ADMIN.value:
            raise Invalid(
                f"{owner.email} is not an admin: an admin scope would give nothing", code="access.bad_scope"
            )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        secret_hash=hash_secret(raw),
        prefix=raw[:10],
        scopes=sorted(s.value for s in wanted),
        user_id=owner.id if owner else None,
        team_slug=team.strip().lower() if team else None,
        created_by=actor.label,
        created_at=at,
        expires_at=parse_expiry(expires, now=at),
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor,
        "token.create",
        target=("token", str(token.id)),
        at=at,
        after={
            "name": name,
            "scopes": token.scopes,
            "user": owner.email if owner else None,
            "team": token.team_slug,
            "expires_at": token.expires_at,
        },
    )
    return CreatedToken(**token_out(session, token, at=at).model_dump(), token=raw)


def list_tokens(session: Session, actor: Actor, *, everyone: bool = False, at: datetime) -> list[TokenOut]:
    """The actor's own tokens; with `everyone`, every token (admins only)."""
    query = select(ApiToken).order_by(ApiToken.id)
    if everyone or actor.user_id is None:
        policy.require(actor, "admin")
    else:
        query = query.where(ApiToken.user_id == actor.user_id)
    return [token_out(session, token, at=at) for token in session.scalars(query).all()]


def revoke_token(session: Session, actor: Actor, token_id: int, *, at: datetime) -> TokenOut:
    """Idempotent: revoking a revoked token changes nothing and writes no second audit entry."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token {token_id}", code="access.unknown_token")
    resource = Resource(type="token", key=str(token_id), owner_user_id=token.user_id)
    if token.user_id is None:
        policy.require(actor, "admin", resource)
    else:
        policy.require(actor, "tokens.manage", resource)
    revoked: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ApiToken).where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None)).values(revoked_at=at)
    )
    session.refresh(token)
    if revoked.rowcount == 1:
        audit.record(session, actor, "token.revoke", target=("token", str(token.id)), at=at, note=token.name)
    return token_out(session, token, at=at)


def mark_used(session: Session, token_id: int, *, at: datetime) -> None:
    """Note that a token was used: one guarded UPDATE, a no-op within LAST_USED_RESOLUTION of the last."""
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= at - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=at)
    )


@dataclass(frozen=True)
class TokenGrant:
    """What a bearer token resolved to: the actor, until when it holds, and whether its
    `last_used_at` is due to be written (done by the caller in a writer's transaction)."""

    actor: Actor
    expires_at: datetime | None
    token_id: int
    stale_use: bool


def _limited_to_team(actor: Actor, team: str) -> Actor:
    """A personal token limited to `team` acts only there, with the role its user has there (an
    admin's token as that team's owner), and is never an admin, whatever its scopes."""
    if actor.role is GlobalRole.ADMIN:
        teams = {team: TeamRoleName.OWNER}
    else:
        teams = {team: actor.teams[team]} if team in actor.teams else {}
    role = GlobalRole.VIEWER if actor.role is GlobalRole.VIEWER else GlobalRole.MEMBER
    return replace(actor, role=role, teams=teams, all_teams=False)


def token_actor(
    session: Session,
    raw: str,
    *,
    at: datetime,
    ip: str | None,
    teams_of: Callable[[str], Mapping[str, str]] = lambda email: {},
) -> TokenGrant:
    """The actor behind a bearer token, and until when the token is valid; errors never repeat it.
    Reads only: the caller writes `last_used_at` when `stale_use` says so (see mark_used)."""
    token = session.scalar(select(ApiToken).where(ApiToken.secret_hash == hash_secret(raw)))
    if token is None:
        raise Unauthenticated("the API token is not valid", code="access.bad_token")
    if token.revoked_at is not None:
        raise Unauthenticated(f"the API token {token.name!r} was revoked", code="access.token_revoked")
    if token.expires_at is not None and token.expires_at <= at:
        raise Unauthenticated(f"the API token {token.name!r} has expired", code="access.token_expired")
    stale = token.last_used_at is None or at - token.last_used_at >= LAST_USED_RESOLUTION
    scopes = frozenset(Scope(s) for s in token.scopes)
    if token.user_id is not None:
        user = session.get(User, token.user_id)
        if user is None or not user.active:
            raise Unauthenticated(
                f"the owner of API token {token.name!r} is switched off", code="access.inactive"
            )
        personal = actor_for(
            session,
            user,
            catalog_teams=teams_of(user.email),
            ip=ip,
            scopes=scopes,
            token=(token.id, token.name),
        )
        if token.team_slug:
            personal = _limited_to_team(personal, token.team_slug)
        return TokenGrant(personal, token.expires_at, token.id, stale)
    teams = {token.team_slug: TeamRoleName.MEMBER} if token.team_slug else {}
    organisation_wide_admin = Scope.ADMIN in scopes and token.team_slug is None
    service_actor = Actor(
        kind="token",
        name=token.name,
        role=GlobalRole.ADMIN if organisation_wide_admin else GlobalRole.MEMBER,
        token_id=token.id,
        teams=teams,
        all_teams=token.team_slug is None,
        scopes=scopes,
        ip=ip,
    )
    return TokenGrant(service_actor, token.expires_at, token.id, stale)
