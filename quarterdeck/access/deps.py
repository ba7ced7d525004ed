"""FastAPI dependencies for who is asking (bearer token, session cookie or nobody), and CSRF checks.

The actor is worked out once per request and kept on `request.state`. A session-cookie request that
changes something must carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`); bearer-token requests need none, since browsers never send those by themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from quarterdeck.access import service as access
from quarterdeck.access.schemas import Actor
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.errors import Forbidden, Unauthenticated
from quarterdeck.web.deps import SAFE_METHODS, runtime_of

SESSION_COOKIE = "qd_session"
LOGIN_CSRF_COOKIE = "qd_login_csrf"

TeamsLookup = Callable[[Session, str], Mapping[str, str]]
"""e-mail -> {team slug: "owner" | "member"} from the catalog; the app factory sets it on app.state,
so access never imports the catalog (which sits above it)."""


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


CACHE_SECONDS = 1.0
"""How long a process reuses what a credential resolved to (by the app's clock, never past the
credential's own expiry). Any change made through this process clears it at once; other replicas
see revocations and role changes within this time."""
CACHE_ENTRIES = 10_000
ACTOR_CACHE = "access.actor-cache"


@dataclass(frozen=True)
class _Resolved:
    actor: Actor
    csrf_token: str | None
    valid_until: datetime


class ActorCache:
    """Credential (hashed) and address -> the actor it resolved to, for CACHE_SECONDS: the hot read
    path then costs no query for who is asking."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Resolved] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], now: datetime) -> _Resolved | None:
        found = self._entries.get(key)
        return found if found is not None and now < found.valid_until else None

    def put(self, key: tuple[str, str], resolved: _Resolved) -> None:
        with self._lock:
            if len(self._entries) >= CACHE_ENTRIES:
                self._entries.clear()
            self._entries[key] = resolved

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _until(now: datetime, expires: datetime | None) -> datetime:
    soon = now + timedelta(seconds=CACHE_SECONDS)
    return min(soon, expires) if expires is not None else soon


def _resolve(request: Request, now: datetime) -> _Resolved:
    """Who is asking, read in a read-only transaction: blocking, so it runs on a worker thread."""
    ip = client_ip(request)
    header = request.headers.get("authorization")
    stale_token: int | None = None
    runtime = runtime_of(request)
    with runtime.sessions() as session:
        lookup: TeamsLookup = request.app.state.teams_of

        def teams_of(email: str) -> Mapping[str, str]:
            return lookup(session, email)

        if header:
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                raise Unauthenticated(
                    "the Authorization header must be 'Bearer <token>'", code="access.bad_authorization"
                )
            grant = access.token_actor(session, raw.strip(), at=now, ip=ip, teams_of=teams_of)
            resolved = _Resolved(grant.actor, None, _until(now, grant.expires_at))
            stale_token = grant.token_id if grant.stale_use else None
        else:
            raw_cookie = request.cookies.get(SESSION_COOKIE)
            found = access.session_user(session, raw_cookie, at=now) if raw_cookie else None
            if found is None:
                return _Resolved(Actor.anonymous(ip), None, _until(now, None))
            user, web = found
            actor = access.actor_for(
                session, user, catalog_teams=teams_of(user.email), ip=ip, via_session=True
            )
            resolved = _Resolved(actor, web.csrf_token, _until(now, web.expires_at))
    if stale_token is not None:
        with transaction(runtime.writers) as session:
            access.mark_token_used(session, stale_token, at=now)
    return resolved


def _credential_key(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization")
    credential = f"bearer {header}" if header else f"cookie {request.cookies.get(SESSION_COOKIE, '')}"
    return hashlib.sha256(credential.encode()).hexdigest(), client_ip(request)


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
        runtime = runtime_of(request)
        cache = runtime.state(ACTOR_CACHE, ActorCache)
        clock = runtime.clock
        now = clock.now()
        key = _credential_key(request)
        if request.method in SAFE_METHODS:
            resolved = cache.get(key, now)
            if resolved is None:
                resolved = await run_in_threadpool(_resolve, request, now)
                cache.put(key, resolved)
        else:
            # a change may end sessions, revoke tokens or move roles: nothing resolved before it stands
            cache.clear()
            resolved = await run_in_threadpool(_resolve, request, now)
        actor = resolved.actor
        request.state.actor, request.state.csrf_token = actor, resolved.csrf_token
        await _check_csrf(request, actor)
    return actor


async def reader(request: Request) -> Actor:
    """An actor who may read the catalog: signed in, or anonymous when anonymous reading is on."""
    actor = await current_actor(request)
    settings = runtime_of(request).settings
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
