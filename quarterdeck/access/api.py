"""Access JSON API under /api/v1: who am I, API tokens, users and their roles, the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from quarterdeck.access import service
from quarterdeck.access.deps import ActorDep, SignedInDep
from quarterdeck.access.schemas import (
    AuditEntryOut,
    CreatedToken,
    GlobalRole,
    Me,
    TeamRoleName,
    TokenOut,
    UserOut,
)
from quarterdeck.web.deps import ClockDep, IdPath, SessionDep, runtime_of

router = APIRouter(prefix="/api/v1", tags=["access"])
Text = Annotated[str | None, Query(max_length=200)]


class TokenIn(BaseModel, extra="forbid"):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=10)
    expires: str | None = Field(default="90d", description="12h, 30d, 8w or never")
    service: bool = Field(default=False, description="A service token, with no user (admins only)")
    team: str | None = Field(default=None, max_length=200, description="Limit a service token to one team")
    user: str | None = Field(default=None, max_length=320, description="Whose personal token (admins only)")


class UserIn(BaseModel, extra="forbid"):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=300)
    role: GlobalRole = GlobalRole.MEMBER
    password: str | None = Field(default=None, max_length=1000)


class UserChange(BaseModel, extra="forbid"):
    role: GlobalRole | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1000)


class TeamRoleIn(BaseModel, extra="forbid"):
    role: TeamRoleName


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    total: int
    page: int
    per_page: int


class Verification(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None


@router.get("/me", response_model=Me)
def me(actor: ActorDep) -> Me:
    return Me(
        signed_in=actor.signed_in,
        kind=actor.kind,
        name=actor.label,
        role=actor.role,
        teams=dict(actor.teams),
        scopes=sorted(actor.scopes) if actor.scopes is not None else None,
    )


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(
    session: SessionDep, actor: SignedInDep, clock: ClockDep, all: bool = False
) -> list[TokenOut]:
    return service.list_tokens(session, actor, everyone=all, at=clock.now())


@router.post("/tokens", response_model=CreatedToken, status_code=201)
def create_token(body: TokenIn, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> CreatedToken:
    """The answer is the only time the token's secret is shown."""
    with session.begin():
        return service.create_token(session, actor, at=clock.now(), **body.model_dump())


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: IdPath, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> TokenOut:
    with session.begin():
        return service.revoke_token(session, actor, token_id, at=clock.now())


@router.get("/users", response_model=list[UserOut])
def list_users(session: SessionDep, actor: SignedInDep) -> list[UserOut]:
    return service.list_users(session, actor)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, session: SessionDep, actor: SignedInDep, clock: ClockDep) -> UserOut:
    with session.begin():
        user = service.create_user(session, actor, at=clock.now(), **body.model_dump())
        return service.user_out(session, user)


@router.patch("/users/{key}", response_model=UserOut)
def change_user(
    key: str, body: UserChange, session: SessionDep, actor: SignedInDep, clock: ClockDep
) -> UserOut:
    with session.begin():
        user = service.change_user(session, actor, key, at=clock.now(), **body.model_dump())
        return service.user_out(session, user)


@router.put("/users/{key}/teams/{team}", response_model=UserOut)
def set_team_role(
    key: str, team: str, body: TeamRoleIn, session: SessionDep, actor: SignedInDep, clock: ClockDep
) -> UserOut:
    with session.begin():
        user = service.set_team_role(session, actor, key, team, body.role, at=clock.now())
        return service.user_out(session, user)


@router.delete("/users/{key}/teams/{team}", response_model=UserOut)
def remove_team_role(
    key: str, team: str, session: SessionDep, actor: SignedInDep, clock: ClockDep
) -> UserOut:
    with session.begin():
        user = service.set_team_role(session, actor, key, team, None, at=clock.now())
        return service.user_out(session, user)


def audit_filters(
    actor: Text = None,
    action: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    q: Text = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> service.AuditFilters:
    """The audit log's filters, the same for the search and the export."""
    return service.AuditFilters(actor, action, target_type, target_id, q, since, until)


AuditFiltersDep = Annotated[service.AuditFilters, Depends(audit_filters)]


@router.get("/audit", response_model=AuditPage)
def audit_log(
    session: SessionDep,
    who: SignedInDep,
    filters: AuditFiltersDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    items, total = service.audit_entries(session, who, filters, page=page, per_page=per_page)
    return AuditPage(items=items, total=total, page=page, per_page=per_page)


@router.get("/audit/export", response_class=StreamingResponse)
def export_audit(request: Request, who: SignedInDep, filters: AuditFiltersDep) -> Response:
    """Every matching entry, oldest first, as JSON Lines, streamed from a session of its own."""
    lines = service.audit_export(who, runtime_of(request).sessions, filters)
    headers = {"Content-Disposition": 'attachment; filename="quarterdeck-audit.jsonl"'}
    return StreamingResponse(lines, media_type="application/x-ndjson", headers=headers)


@router.get("/audit/verify", response_model=Verification)
def verify_audit(session: SessionDep, who: SignedInDep) -> Verification:
    return Verification(**service.audit_verification(session, who).as_json())
