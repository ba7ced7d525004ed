"""Access pages: sign-in (password and single sign-on), sign-out, the account page with API tokens,
and the admin pages for users and the audit log."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from quarterdeck.access import service, signed
from quarterdeck.access.audit_diff import audit_diff
from quarterdeck.access.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ActorDep,
    SignedInDep,
    check_login_csrf,
    client_ip,
    login_csrf_token,
    set_login_csrf,
    set_session_cookie,
)
from quarterdeck.access.oidc import AuthRequest, OidcClient, OidcProvider
from quarterdeck.access.schemas import CreatedToken, GlobalRole, Scope, TeamRoleName
from quarterdeck.config import Settings
from quarterdeck.db import transaction
from quarterdeck.errors import Invalid, QuarterdeckError, RateLimited, Unauthenticated
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, SettingsDep, runtime_of
from quarterdeck.web.templating import local_path, templates

router = APIRouter(include_in_schema=False)
OIDC_COOKIE = "qd_oidc"
OIDC_CLIENT = "access.oidc-client"
OIDC_STATE_SECONDS = 600
Text = Annotated[str | None, Query(max_length=200)]


def _safe_next(target: str | None) -> str:
    """Only paths of this site: never an open redirect to another host."""
    return local_path(target) or "/"


def _login_page(
    request: Request, settings: Settings, *, next_: str, error: str | None = None, status: int = 200
) -> Response:
    token = login_csrf_token(request)
    context = {
        "next": next_,
        "error": error,
        "settings": settings,
        "sso": settings.oidc_issuer is not None,
        "login_csrf": token,
    }
    response = templates.TemplateResponse(request, "access/login.html", context, status_code=status)
    set_login_csrf(response, token, settings)
    return response


@router.get("/login", response_class=HTMLResponse, name="login")
def login_page(request: Request, settings: SettingsDep, actor: ActorDep, next: Text = None) -> Response:
    if actor.signed_in:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, settings, next_=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    settings: SettingsDep,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    check_login_csrf(request, csrf_token)
    try:
        with transaction(runtime_of(request).writers) as session:
            user = service.authenticate(
                session,
                email=email,
                password=password,
                ip=client_ip(request),
                at=clock.now(),
                settings=settings,
            )
            raw = None
            if user is not None:
                raw, _web = service.start_session(
                    session,
                    user,
                    ip=client_ip(request),
                    user_agent=request.headers.get("user-agent"),
                    at=clock.now(),
                    hours=settings.session_hours,
                )
    except (RateLimited, Unauthenticated) as exc:
        status = 429 if isinstance(exc, RateLimited) else 401
        return _login_page(request, settings, next_=_safe_next(next), error=exc.message, status=status)
    if raw is None:
        return _login_page(
            request, settings, next_=_safe_next(next), error="Wrong e-mail or password.", status=401
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, raw, settings)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, actor: SignedInDep) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        with transaction(runtime_of(request).writers) as session:
            service.end_session(session, raw)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _oidc(request: Request) -> OidcClient:
    """The single sign-on client, made once per process (it caches the provider's metadata and keys)."""
    runtime = runtime_of(request)
    settings = runtime.settings
    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise Invalid("single sign-on is not configured (QD_OIDC_ISSUER)", code="access.sso_off")
    provider = OidcProvider(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        scopes=settings.oidc_scopes,
        groups_claim=settings.oidc_groups_claim,
    )
    return runtime.state(OIDC_CLIENT, lambda: OidcClient(provider, clock=runtime.clock))


def _callback_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + "/auth/oidc/callback"


@router.get("/auth/oidc/start")
def oidc_start(request: Request, settings: SettingsDep, clock: ClockDep, next: Text = None) -> Response:
    auth = _oidc(request).begin(_callback_url(settings))
    state = {
        "state": auth.state,
        "nonce": auth.nonce,
        "verifier": auth.code_verifier,
        "next": _safe_next(next),
    }
    response = RedirectResponse(auth.url, status_code=303)
    response.set_cookie(
        OIDC_COOKIE,
        signed.sign(state, secret=settings.secret_key, at=clock.now()),
        max_age=OIDC_STATE_SECONDS,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/auth/oidc",
    )
    return response


@router.get("/auth/oidc/callback", response_class=HTMLResponse)
def oidc_callback(
    request: Request,
    settings: SettingsDep,
    clock: ClockDep,
    code: Text = None,
    state: Text = None,
    error: Text = None,
    error_description: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    saved: dict[str, str] = {}
    try:
        if error:
            raise Invalid(f"the identity provider refused: {error_description or error}", code="oidc.refused")
        cookie = request.cookies.get(OIDC_COOKIE)
        if not cookie or not code or not state:
            raise Invalid(
                "the sign-in was not started here, or it expired; start again", code="oidc.no_state"
            )
        saved = signed.unsign(
            cookie, secret=settings.secret_key, at=clock.now(), max_age_seconds=OIDC_STATE_SECONDS
        )
        expected = AuthRequest(
            url="", state=saved["state"], nonce=saved["nonce"], code_verifier=saved["verifier"]
        )
        identity = _oidc(request).finish(
            redirect_uri=_callback_url(settings), code=code, returned_state=state, expected=expected
        )
        with transaction(runtime_of(request).writers) as session:
            user = service.sign_in_oidc(session, identity, settings=settings, at=clock.now())
            raw, _web = service.start_session(
                session,
                user,
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent"),
                at=clock.now(),
                hours=settings.session_hours,
            )
    except QuarterdeckError as exc:
        response = _login_page(
            request,
            settings,
            next_=_safe_next(saved.get("next")),
            error=f"Single sign-on failed: {exc.message}",
            status=403,
        )
        response.delete_cookie(OIDC_COOKIE, path="/auth/oidc")
        return response
    response = RedirectResponse(_safe_next(saved.get("next")), status_code=303)
    set_session_cookie(response, raw, settings)
    response.delete_cookie(OIDC_COOKIE, path="/auth/oidc")
    return response


# ---------------------------------------------------------------- account and tokens


def ci_snippets(created: CreatedToken, base_url: str) -> list[tuple[str, str]]:
    """(title, shell text) of what CI pastes to report deploys with a new token: the `quarterdeck`
    command, or curl where it is not installed; none for a token without the deploy scope."""
    if Scope.DEPLOY not in created.scopes:
        return []
    base = base_url.rstrip("/")
    command = (
        "# keep the token in your CI's secrets; VERSION and RUN_ID (a retry reuses it) come from your CI\n"
        f"export QD_API_URL='{base}'\n"
        f"export QD_API_TOKEN='{created.token}'\n"
        'quarterdeck deploys report --service SERVICE --environment ENVIRONMENT --version "$VERSION" '
        '--id "$RUN_ID"'
    )
    curl = (
        f"curl -fsS '{base}/api/v1/deploys' -H 'Authorization: Bearer {created.token}' \\\n"
        "  -H 'Content-Type: application/json' --data-binary @- <<EOF\n"
        '{"id": "$RUN_ID", "service": "SERVICE", "environment": "ENVIRONMENT", "version": "$VERSION",\n'
        ' "status": "succeeded", "started_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}\n'
        "EOF"
    )
    return [("With the quarterdeck command", command), ("With curl", curl)]


def _account(
    request: Request,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    new_token: CreatedToken | None = None,
) -> Response:
    user = service.find_user(session, actor.user_id) if actor.user_id else None
    settings = runtime_of(request).settings
    context = {
        "user": service.user_out(session, user) if user else None,
        "tokens": service.list_tokens(session, actor, at=clock.now()) if user else [],
        "scopes": [s.value for s in service.scopes_offered(actor.role)],
        "new_token": new_token,
        "ci_snippets": ci_snippets(new_token, settings.base_url) if new_token else [],
    }
    return templates.TemplateResponse(
        request, "access/account.html", context, status_code=201 if new_token else 200
    )


@router.get("/account", response_class=HTMLResponse, name="account")
def account(request: Request, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> Response:
    return _account(request, session, actor, clock)


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    name: Annotated[str, Form(max_length=200)],
    scopes: Annotated[list[str], Form()],
    expires: Annotated[str, Form(max_length=20)] = "90d",
) -> Response:
    """The new token is shown on this answer only; reloading the page does not show it again."""
    with session.begin():
        created = service.create_token(
            session, actor, name=name, scopes=scopes, expires=expires, at=clock.now()
        )
    return _account(request, session, actor, clock, new_token=created)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: IdPath, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> Response:
    with session.begin():
        service.revoke_token(session, actor, token_id, at=clock.now())
    return RedirectResponse("/account", status_code=303)


# ---------------------------------------------------------------- admin


@router.get("/admin/users", response_class=HTMLResponse, name="admin_users")
def users_page(request: Request, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> Response:
    context = {
        "users": service.list_users(session, actor),
        "service_tokens": [
            t for t in service.list_tokens(session, actor, everyone=True, at=clock.now()) if not t.user
        ],
        "roles": [r.value for r in GlobalRole],
        "team_roles": [r.value for r in TeamRoleName],
        "scopes": [s.value for s in Scope],
    }
    return templates.TemplateResponse(request, "access/users.html", context)


@router.post("/admin/users")
def add_user(
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=300)] = "",
    role: Annotated[GlobalRole, Form()] = GlobalRole.MEMBER,
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    with session.begin():
        service.create_user(
            session, actor, email=email, name=name, role=role, password=password or None, at=clock.now()
        )
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/role")
def change_role(
    user_id: IdPath,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    role: Annotated[GlobalRole, Form()],
    active: Annotated[bool, Form()] = True,
) -> Response:
    with session.begin():
        service.change_user(session, actor, user_id, role=role, active=active, at=clock.now())
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/teams")
def grant_team(
    user_id: IdPath,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    team: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=20)],
) -> Response:
    """`role` is owner, member, or `none` to take the team away."""
    with session.begin():
        service.set_team_role(session, actor, user_id, team, role, at=clock.now())
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/tokens", response_class=HTMLResponse)
def create_service_token(
    request: Request,
    session: SessionDep,
    actor: SignedInDep,
    clock: ClockDep,
    name: Annotated[str, Form(max_length=200)],
    scopes: Annotated[list[str], Form()],
    team: Annotated[str, Form(max_length=200)] = "",
    expires: Annotated[str, Form(max_length=20)] = "90d",
) -> Response:
    with session.begin():
        created = service.create_token(
            session,
            actor,
            name=name,
            scopes=scopes,
            service=True,
            team=team or None,
            expires=expires,
            at=clock.now(),
        )
    return _account(request, session, actor, clock, new_token=created)


@router.get("/admin/audit", response_class=HTMLResponse, name="admin_audit")
def audit_page(
    request: Request,
    session: SessionDep,
    who: SignedInDep,
    actor: Text = None,
    action: Text = None,
    target_type: Text = None,
    q: Text = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    filters = service.AuditFilters(actor or None, action or None, target_type or None, None, q or None)
    entries, total = service.audit_entries(session, who, filters, page=page, per_page=50)
    query = urlencode(
        {k: v for k, v in {"actor": actor, "action": action, "target_type": target_type, "q": q}.items() if v}
    )
    context = {
        "entries": [(entry, audit_diff(entry.before, entry.after)) for entry in entries],
        "total": total,
        "page": page,
        "filters": {
            "actor": actor or "",
            "action": action or "",
            "target_type": target_type or "",
            "q": q or "",
        },
        "export_url": "/api/v1/audit/export" + (f"?{query}" if query else ""),
        "verification": service.audit_verification(session, who)
        if request.query_params.get("verify")
        else None,
    }
    return templates.TemplateResponse(request, "access/audit.html", context)
