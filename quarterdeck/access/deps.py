"""FastAPI dependencies for who is asking (bearer token, session cookie or nobody), and CSRF checks.

The actor is worked out once per request and kept on `request.state`. A session-cookie request that
changes something must carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`); bearer-token requests need none, since browsers never send those by themselves.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.clock import Clock
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "qd_session"
LOGIN_CSRF_COOKIE = "qd_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

TeamsLookup = Callable[[Session, str], Mapping[str, str]]
"""e-mail -> {team slug: "owner" | "member"} from the catalog; the app factory sets it on app.state,
so access never imports the catalog (which sits above it)."""


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _resolve(request: Request) -> Actor:
    clock: Clock = request.app.state.clock
    ip = client_ip(request)
    header = request.headers.get("authorization")
    with transaction(request.app.state.sessions) as session:
        lookup: TeamsLookup = request.app.state.teams_of

        def teams_of(email: str) -> Mapping[str, str]:
            return lookup(session, email)

        if header:
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                raise Unauthenticated(
                    "the Authorization header must be 'Bearer <token>'", code="access.bad_authorization"
                )
            return access.token_actor(session, raw.strip(), at=clock.now(), ip=ip, teams_of=teams_of)
        raw_cookie = request.cookies.get(SESSION_COOKIE)
        found = access.session_user(session, raw_cookie, at=clock.now()) if raw_cookie else None
        if found is None:
            return Actor.anonymous(ip)
        user, web = found
        request.state.csrf_token = web.csrf_token
        return access.actor_for(session, user, catalog_teams=teams_of(user.email), ip=ip, via_session=True)


async def _check_csrf(request: Request, actor: Actor) -> None:
    if not actor.via_session or request.method in SAFE_METHODS:
        return
    expected: str = request.state.csrf_token
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        field = (await request.form()).get("csrf_token")
        sent = field if isinstance(field, str) else None
    if not sent or not hmac.compare_digest(sent, expected):
        raise Forbidden(
            "the form is missing its CSRF token or it does not match your session; reload the page and retry",
            code="access.csrf",
        )


async def current_actor(request: Request) -> Actor:
    """Anyone, anonymous included: routes that need more call the policy through their service."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        request.state.csrf_token = None
        actor = _resolve(request)
        request.state.actor = actor
        await _check_csrf(request, actor)
    return actor


async def reader(request: Request) -> Actor:
    """An actor who may read the catalog: signed in, or anonymous when anonymous reading is on."""
    actor = await current_actor(request)
    settings: Settings = request.app.state.settings
    if not actor.signed_in and not settings.anonymous_read:
        raise Unauthenticated("sign in to use Quarterdeck", code="access.sign_in_required")
    return actor


async def signed_in(request: Request) -> Actor:
    actor = await current_actor(request)
    if not actor.signed_in:
        raise Unauthenticated("sign in first", code="access.sign_in_required")
    return actor


ActorDep = Annotated[Actor, Depends(current_actor)]
ReaderDep = Annotated[Actor, Depends(reader)]
SignedInDep = Annotated[Actor, Depends(signed_in)]


def set_session_cookie(response: Response, raw: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=settings.session_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )


def login_csrf_token(request: Request) -> str:
    """The sign-in form's CSRF token (double submit: a cookie and a hidden field that must agree)."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_login_csrf(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, secure=settings.cookie_secure, samesite="lax"
    )


def check_login_csrf(request: Request, sent: str | None) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("the sign-in form expired; reload it and try again", code="access.csrf")
