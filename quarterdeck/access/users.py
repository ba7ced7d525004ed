"""Users and their roles, local passwords with lockout, browser sessions, and OIDC sign-in."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from quarterdeck.access import audit, policy
from quarterdeck.access.models import LoginAttempt, TeamRole, User, WebSession
from quarterdeck.access.oidc import OidcIdentity
from quarterdeck.access.schemas import Actor, GlobalRole, Resource, Scope, TeamRoleName, UserOut
from quarterdeck.config import Settings
from quarterdeck.db import lock_row
from quarterdeck.errors import Conflict, Invalid, NotFound, RateLimited, Unauthenticated

MIN_PASSWORD = 12
ATTEMPTS_KEPT = timedelta(days=2)
"""Sign-in attempts older than this are deleted at each successful sign-in (lockouts are shorter)."""
IP_FAILURE_FACTOR = 4
"""An address may fail this many times the per-account limit before it is slowed down."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TEAM_SLUG = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,198}[a-z0-9])?$")


def hash_secret(raw: str) -> str:
    """SHA-256 of a high-entropy random secret (session or token): enough, and cheap to look up."""
    return hashlib.sha256(raw.encode()).hexdigest()


def normalise_email(email: str) -> str:
    cleaned = email.strip().lower()
    if not EMAIL.match(cleaned):
        raise Invalid(
            f"{email!r} is not an e-mail address",
            code="access.bad_email",
            details=[{"field": "email", "message": "not an e-mail address"}],
        )
    return cleaned


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(
            f"the password must have at least {MIN_PASSWORD} characters",
            code="access.weak_password",
            details=[{"field": "password", "message": f"at least {MIN_PASSWORD} characters"}],
        )


def find_user(session: Session, key: str | int) -> User:
    user = session.get(User, key) if isinstance(key, int) else None
    if user is None and isinstance(key, str):
        user = session.scalar(select(User).where(User.email == key.strip().lower()))
        if user is None and key.isdigit() and len(key) <= 9:
            user = session.get(User, int(key))
    if user is None:
        raise NotFound(f"no user {key!r}", code="access.unknown_user")
    return user


def team_roles(session: Session, user_id: int) -> dict[str, TeamRoleName]:
    rows = session.scalars(select(TeamRole).where(TeamRole.user_id == user_id)).all()
    return {row.team_slug: TeamRoleName(row.role) for row in rows}


def user_out(session: Session, user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=GlobalRole(user.role),
        active=user.active,
        sso=user.oidc_subject is not None,
        teams=team_roles(session, user.id),
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def list_users(session: Session, actor: Actor) -> list[UserOut]:
    policy.require(actor, "admin")
    return [user_out(session, user) for user in session.scalars(select(User).order_by(User.email)).all()]


def actor_for(
    session: Session,
    user: User,
    *,
    catalog_teams: Mapping[str, str] | None = None,
    ip: str | None = None,
    scopes: frozenset[Scope] | None = None,
    token: tuple[int, str] | None = None,
    via_session: bool = False,
) -> Actor:
    """The actor a user acts as: team roles granted here, plus the roles the catalog's teams give them
    (a catalog team's lead or manager owns it); the stronger of the two wins."""
    teams = {slug: TeamRoleName(role) for slug, role in (catalog_teams or {}).items()}
    for slug, granted in team_roles(session, user.id).items():
        if teams.get(slug) is not TeamRoleName.OWNER:
            teams[slug] = granted
    role = GlobalRole(user.role)
    return Actor(
        kind="token" if token else "user",
        name=token[1] if token else user.email,
        role=role,
        user_id=user.id,
        token_id=token[0] if token else None,
        teams=teams,
        all_teams=role is GlobalRole.ADMIN,
        scopes=scopes,
        ip=ip,
        via_session=via_session,
    )


def create_user(
    session: Session,
    actor: Actor,
    *,
    email: str,
    name: str = "",
    role: GlobalRole = GlobalRole.MEMBER,
    password: str | None = None,
    at: datetime,
) -> User:
    policy.require(actor, "admin")
    email = normalise_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user {email!r} already exists", code="access.duplicate_user")
    if password is not None:
        _check_password(password)
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        role=role.value,
        password_hash=_hasher.hash(password) if password is not None else None,
        active=True,
        created_at=at,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor,
        "user.create",
        target=("user", email),
        at=at,
        after={"email": email, "name": user.name, "role": role.value, "password": password is not None},
    )
    return user


def change_user(
    session: Session,
    actor: Actor,
    key: str | int,
    *,
    role: GlobalRole | None = None,
    active: bool | None = None,
    password: str | None = None,
    at: datetime,
) -> User:
    """Change a user's global role, switch them off or on, or set a new password (admins only)."""
    policy.require(actor, "admin")
    user = find_user(session, key)
    lock_row(session, user)
    before = {"role": user.role, "active": user.active}
    if role is not None:
        user.role = role.value
    if active is not None:
        user.active = active
        if not active:
            session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    if password is not None:
        _check_password(password)
        user.password_hash = _hasher.hash(password)
    after = {"role": user.role, "active": user.active} | ({"password": "changed"} if password else {})
    session.flush()
    audit.record(
        session, actor, "user.change", target=("user", user.email), at=at, before=before, after=after
    )
    return user


def _team_role(text: str) -> TeamRoleName | None:
    """A team role as a form or file names it: owner, member, or none to take the team away."""
    if text.strip().lower() == "none":
        return None
    try:
        return TeamRoleName(text.strip().lower())
    except ValueError:
        known = ", ".join([*(r.value for r in TeamRoleName), "none"])
        raise Invalid(
            f"{text!r} is not a team role: expected one of {known}",
            code="access.bad_team_role",
            details=[{"field": "role", "message": f"expected one of {known}"}],
        ) from None


def set_team_role(
    session: Session,
    actor: Actor,
    key: str | int,
    team: str,
    role: TeamRoleName | str | None,
    *,
    at: datetime,
) -> User:
    """Grant (or with role None or "none", take away) a user's role in a team. Team owners manage
    their team.

    The policy is asked before the role is read or the user is looked up, so a refusal never tells
    who has an account, and a viewer's bad input is refused as any of theirs is.
    """
    team = team.strip().lower()
    if not TEAM_SLUG.match(team):
        raise Invalid(
            f"{team!r} is not a team slug (lower-case letters, digits, '.', '_' and '-')",
            code="access.bad_team",
            details=[{"field": "team", "message": "not a team slug"}],
        )
    policy.require(actor, "catalog.edit", Resource(type="team", key=team, team=team))
    if isinstance(role, str):
        role = _team_role(role)
    user = find_user(session, key)
    lock_row(session, user)  # one change to a user's team roles at a time: `before` is what it replaces
    row = session.scalar(select(TeamRole).where(TeamRole.user_id == user.id, TeamRole.team_slug == team))
    before = row.role if row else None
    if role is None and row is not None:
        session.delete(row)
    elif role is not None and row is None:
        session.add(TeamRole(user_id=user.id, team_slug=team, role=role.value, granted_by="admin"))
    elif role is not None and row is not None:
        row.role, row.granted_by = role.value, "admin"
    session.flush()
    audit.record(
        session,
        actor,
        "user.team_role",
        target=("user", user.email),
        at=at,
        before={"team": team, "role": before},
        after={"team": team, "role": role.value if role else None},
    )
    return user


# ---------------------------------------------------------------- passwords and lockout


def _recent_failures(session: Session, by: str, value: str, since: datetime) -> int:
    """Failures by account ("email") or address ("ip") since `since`; for an account, a success
    in between starts the count again."""
    column = LoginAttempt.email if by == "email" else LoginAttempt.ip
    query = select(func.count()).where(column == value, LoginAttempt.at >= since, ~LoginAttempt.succeeded)
    if by == "email":
        last_success = session.scalar(
            select(func.max(LoginAttempt.at)).where(column == value, LoginAttempt.succeeded)
        )
        if last_success is not None:
            query = query.where(LoginAttempt.at > last_success)
    return session.scalar(query) or 0


def authenticate(
    session: Session, *, email: str, password: str, ip: str, at: datetime, settings: Settings
) -> User | None:
    """Check a local password; None for a wrong one, with the failed attempt recorded (so the caller
    commits either way). Too many failures lock the account (whether or not it exists, so the
    answer tells nobody which e-mails have accounts) and slow down the address they came from."""
    if not settings.local_login:
        raise Unauthenticated("local sign-in is switched off: use single sign-on", code="access.local_off")
    if "\x00" in email or "\x00" in password:
        # No stored e-mail or password holds a NUL (PostgreSQL cannot even store one): a failed attempt.
        email, password = email.replace("\x00", ""), "\x00"
    email = email.strip().lower()[:320]
    window_start = at - timedelta(minutes=settings.login_lockout_minutes)
    if _recent_failures(session, "ip", ip, window_start) >= settings.login_max_failures * IP_FAILURE_FACTOR:
        raise RateLimited(
            f"too many failed sign-ins from your address; wait {settings.login_lockout_minutes} minutes",
            code="access.rate_limited",
        )
    if _recent_failures(session, "email", email, window_start) >= settings.login_max_failures:
        raise RateLimited(
            f"this account is locked after {settings.login_max_failures} failed sign-ins; "
            f"try again in {settings.login_lockout_minutes} minutes",
            code="access.locked",
        )
    user = session.scalar(select(User).where(User.email == email))
    good = False
    try:
        good = _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        good = False
    good = good and user is not None and user.password_hash is not None and user.active
    session.add(LoginAttempt(email=email, ip=ip[:64], at=at, succeeded=good))
    session.flush()
    if not good or user is None:
        return None
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < at - ATTEMPTS_KEPT))
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


# ---------------------------------------------------------------- sessions


def start_session(
    session: Session, user: User, *, ip: str | None, user_agent: str | None, at: datetime, hours: int
) -> tuple[str, WebSession]:
    """A brand-new session for a sign-in: never an identifier the browser brought (no fixation)."""
    raw = secrets.token_urlsafe(32)
    web = WebSession(
        secret_hash=hash_secret(raw),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=at,
        expires_at=at + timedelta(hours=hours),
        ip=(ip or "")[:64] or None,
        user_agent=(user_agent or "")[:300] or None,
    )
    user.last_login_at = at
    session.add(web)
    session.execute(delete(WebSession).where(WebSession.expires_at < at))
    session.flush()
    return raw, web


def session_user(session: Session, raw: str, *, at: datetime) -> tuple[User, WebSession] | None:
    web = session.scalar(select(WebSession).where(WebSession.secret_hash == hash_secret(raw)))
    if web is None or web.expires_at <= at:
        return None
    user = session.get(User, web.user_id)
    if user is None or not user.active:
        return None
    return user, web


def end_session(session: Session, raw: str) -> None:
    session.execute(delete(WebSession).where(WebSession.secret_hash == hash_secret(raw)))


# ---------------------------------------------------------------- single sign-on


def _group_slug(group: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", group.strip().lower()).strip("-")


def sign_in_oidc(session: Session, identity: OidcIdentity, *, settings: Settings, at: datetime) -> User:
    """Find or create the user for an OIDC identity; its group claims become its team memberships."""
    user = session.scalar(
        select(User).where(User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject)
    ) or session.scalar(select(User).where(User.email == identity.email.lower()))
    system = Actor.system("oidc")
    admin = settings.oidc_admin_group is not None and settings.oidc_admin_group in identity.groups
    if user is None:
        user = create_user(
            session,
            system,
            email=identity.email,
            name=identity.name,
            role=GlobalRole.ADMIN if admin else GlobalRole.MEMBER,
            at=at,
        )
    if not user.active:
        raise Unauthenticated(f"the account {user.email} is switched off", code="access.inactive")
    user.oidc_issuer, user.oidc_subject = identity.issuer, identity.subject
    if admin and user.role != GlobalRole.ADMIN.value:
        change_user(session, system, user.id, role=GlobalRole.ADMIN, at=at)
    teams = {_group_slug(g) for g in identity.groups if g != settings.oidc_admin_group}
    _sync_group_teams(session, user, {slug for slug in teams if TEAM_SLUG.match(slug)}, at=at)
    return user


def _sync_group_teams(session: Session, user: User, teams: set[str], *, at: datetime) -> None:
    rows = {
        row.team_slug: row for row in session.scalars(select(TeamRole).where(TeamRole.user_id == user.id))
    }
    added = sorted(teams - set(rows))
    removed = sorted(slug for slug, row in rows.items() if row.granted_by == "oidc" and slug not in teams)
    for slug in added:
        session.add(
            TeamRole(user_id=user.id, team_slug=slug, role=TeamRoleName.MEMBER.value, granted_by="oidc")
        )
    for slug in removed:
        session.delete(rows[slug])
    if added or removed:
        session.flush()
        audit.record(
            session,
            Actor.system("oidc"),
            "user.sso_teams",
            target=("user", user.email),
            at=at,
            before=sorted(rows),
            after=sorted((set(rows) - set(removed)) | set(added)),
        )
