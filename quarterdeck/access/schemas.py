"""Who is acting and on what: the Actor and Resource values every domain passes to the policy, and the
shapes of users, tokens, change requests and audit entries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel


class GlobalRole(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class TeamRoleName(StrEnum):
    OWNER = "owner"
    MEMBER = "member"


class Scope(StrEnum):
    """What an API token may be used for; a browser session is limited by its user's roles only."""

    READ = "read"
    WRITE_CATALOG = "write:catalog"
    DEPLOY = "deploy"
    PAGE = "page"
    FLAGS = "flags"
    ADMIN = "admin"


ActorKind = Literal["user", "token", "system", "anonymous"]


@dataclass(frozen=True)
class Actor:
    """The one who acts: a signed-in user, an API token, the CLI on the server, or an anonymous reader.

    `teams` maps team slug to the actor's role in it; `all_teams` stands for every team (admins, the
    server's own CLI and organisation-wide service tokens). `scopes` is None for sessions.
    """

    kind: ActorKind
    name: str
    role: GlobalRole
    user_id: int | None = None
    token_id: int | None = None
    teams: Mapping[str, TeamRoleName] = field(default_factory=dict)
    all_teams: bool = False
    scopes: frozenset[Scope] | None = None
    ip: str | None = None
    via_session: bool = False

    @property
    def label(self) -> str:
        if self.kind == "token":
            return f"token:{self.name}"
        return self.name

    @property
    def signed_in(self) -> bool:
        return self.kind != "anonymous"

    @classmethod
    def system(cls, name: str = "cli") -> Actor:
        return cls(kind="system", name=f"system:{name}", role=GlobalRole.ADMIN, all_teams=True)

    @classmethod
    def anonymous(cls, ip: str | None = None) -> Actor:
        return cls(kind="anonymous", name="anonymous", role=GlobalRole.VIEWER, ip=ip)


@dataclass(frozen=True)
class Resource:
    """What is acted on, as much of it as the policy needs: its owning team, tier and environment."""

    type: str
    key: str = ""
    team: str | None = None
    tier: int | None = None
    environment: str | None = None
    production: bool = False
    owner_user_id: int | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: GlobalRole
    active: bool
    sso: bool
    teams: dict[str, TeamRoleName]
    created_at: datetime
    last_login_at: datetime | None


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[Scope]
    user: str | None
    team: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool


class CreatedToken(TokenOut):
    """Returned once, at creation: the only time the secret is shown."""

    token: str


@dataclass(frozen=True)
class ChangeRequestIn:
    """A change some domain wants to make, asking whether a second person must say yes first.

    `action` is the asking domain's own name for the change ("deploy", "flag.change",
    "pipeline.override"); `resource` is what the policy judges (its type, key, owning team, tier and
    environment); `details` are the domain's own facts, kept as given (e.g. the version to deploy).
    """

    action: str
    resource: Resource
    summary: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    needs_decision: bool = False
    """True: a person must decide it whatever the two-person rule says (a pipeline's approval step, an
    emergency deploy into a frozen environment)."""


class ChangeRequestOut(BaseModel):
    """A change request as it stands now. `service` and `version` are the resource key and
    details["version"] of a request about a service (the API's shape from when every request was a
    deploy); `status` is judged against the resource as it is now (see change_requests.py)."""

    id: int
    action: str
    resource_type: str
    resource_key: str
    service: str | None
    team: str | None
    tier: int | None
    environment: str
    production: bool
    version: str | None
    summary: str
    details: dict[str, Any]
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_kind: str
    action: str
    target_type: str
    target_id: str
    before: object
    after: object
    note: str | None
    ip: str | None
    hash: str


class Me(BaseModel):
    signed_in: bool
    kind: ActorKind
    name: str
    role: GlobalRole
    teams: dict[str, TeamRoleName]
    scopes: list[Scope] | None
