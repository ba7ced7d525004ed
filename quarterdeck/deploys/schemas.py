"""Deploy API shapes: what CI reports, and what the portal answers about releases and live versions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from quarterdeck.deploys.models import DeploySource
from quarterdeck.deploys.states import DeployStatus

SLUG = r"^[a-z0-9]([a-z0-9._-]{0,198}[a-z0-9])?$"
SERVICE_SLUG = r"^[a-z0-9]([a-z0-9._/-]{0,198}[a-z0-9])?$"
"""Service slugs may be namespaced, as the catalog allows (`web/checkout`)."""
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$"
"""Semantic versions (1.4.2, v2.0.0-rc.1+build.5), dates (2026.12.01), short or long commit ids."""
DEPLOY_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@#+-]{0,199}$"
COMMIT = r"^[0-9a-f]{7,64}$"

Slug = Annotated[str, StringConstraints(pattern=SLUG, max_length=200)]
ServiceSlug = Annotated[str, StringConstraints(pattern=SERVICE_SLUG, max_length=200)]
Version = Annotated[str, StringConstraints(pattern=VERSION, max_length=128)]


class DeployReport(BaseModel):
    """A deploy done elsewhere, as a CI system reports it. Re-sending the same `id` never makes a
    second record: it is a retry, or the same deploy moving on (running -> succeeded)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, StringConstraints(pattern=DEPLOY_ID, max_length=200)] = Field(
        description="The reporter's own id for this deploy, e.g. 'github:run/1234/attempt/1'"
    )
    service: ServiceSlug
    environment: Slug
    version: Version
    image: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None,
        description="Image reference, e.g. registry.example.com/shop/checkout:1.4.2 or ...@sha256:...",
    )
    commit: Annotated[str, StringConstraints(pattern=COMMIT)] | None = None
    status: DeployStatus
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    notes: Annotated[str, StringConstraints(max_length=10_000)] = ""
    source: DeploySource = DeploySource.CI
    approval: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="The id of the approved request to ship this (POST /api/v1/approvals). Left out, an "
        "approved request for the same service, environment and version is linked when there is one; "
        "a tier-1 production deploy with neither is flagged.",
    )


class EnvironmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    position: int = Field(default=0, ge=0, le=10_000)
    production: bool = False


class EnvironmentOut(BaseModel):
    slug: str
    name: str
    position: int
    production: bool


class ReleaseOut(BaseModel):
    version: str
    image: str | None
    digest: str | None
    commit: str | None
    notes: str
    created_by: str
    created_at: datetime


class DeployFlag(BaseModel):
    """Something about a deploy a person should look at, e.g. a tier-1 production deploy nobody approved."""

    code: str = Field(description="Stable, e.g. unapproved_tier1_production")
    message: str


class DeployOut(BaseModel):
    id: int
    external_id: str
    service: str
    environment: str
    status: DeployStatus
    source: DeploySource
    deployed_by: str
    started_at: datetime
    finished_at: datetime | None
    notes: str
    release: ReleaseOut
    url: str
    service_tier: int | None = Field(description="The service's tier when the deploy was reported")
    approval: int | None = Field(description="The approved change request this deploy shipped under")
    flags: list[DeployFlag] = Field(description="What a person should look at; empty when nothing")


class DeployEventOut(BaseModel):
    """One status change: `from_status` is None for the deploy's first record."""

    from_status: DeployStatus | None
    to_status: DeployStatus
    at: datetime
    actor: str
    reason: str


class DeployDetail(DeployOut):
    """A deploy with its timeline of status changes, oldest first."""

    events: list[DeployEventOut]


class ReportResult(BaseModel):
    deploy: DeployOut
    outcome: str = Field(description="created, updated, or unchanged (a replayed report)")


class DeployPage(BaseModel):
    items: list[DeployOut]
    total: int
    page: int
    per_page: int


class RegistryImage(BaseModel):
    tag: str
    digest: str
    created: datetime | None


class RegistryState(BaseModel):
    repository: str | None
    host: str | None = Field(default=None, description="The registry's host, when the repository names one")
    latest: RegistryImage | None = None
    images: list[RegistryImage] = []
    error: str | None = Field(default=None, description="Why there are no images to show, in one sentence")
    problem: str | None = Field(
        default=None,
        description="no_repository (the service names no image), not_configured (no registry client), "
        "unreachable (the registry cannot be reached from the portal), or failed (it answered with an "
        "error, or the image reference is not valid)",
    )


class LiveEnvironment(BaseModel):
    environment: EnvironmentOut
    deploy: DeployOut | None
    behind: int | None = Field(
        default=None, description="How many newer images the registry holds than the one live here"
    )


class LiveOut(BaseModel):
    service: str
    environments: list[LiveEnvironment]
    registry: RegistryState


class ChangeOut(BaseModel):
    """What a deploy brought compared with what was live before it in the same environment."""

    previous: DeployOut | None
    releases: list[ReleaseOut]
    compare_url: str | None


class MatrixRow(BaseModel):
    service: str
    title: str
    owner: str | None
    tier: int | None
    live: dict[str, DeployOut | None]
    reference: str | None = Field(description="The version the others are compared with (see drift.py)")
    drift: list[str] = Field(description="Environments whose live version is not the reference version")


class MatrixPage(BaseModel):
    environments: list[EnvironmentOut]
    rows: list[MatrixRow]
    total: int
    page: int
    per_page: int


class ApprovalIn(BaseModel):
    """A request to deploy a version of a service to an environment (a change request of action "deploy")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    service: ServiceSlug
    environment: Slug
    version: Version | None = None
    summary: Annotated[str, StringConstraints(max_length=2000)] = ""


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
