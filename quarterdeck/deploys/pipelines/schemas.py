"""Pipeline API shapes: stored pipelines and their versions, the answer of an apply, and the pipeline a
deploy gets with why, its steps written out for people."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from quarterdeck.deploys.pipelines.format import Pipeline


class PipelineOut(BaseModel):
    """A pipeline where it is kept: a service's or team's override (for one environment, or all), an
    organisation default, or a product default (`id` None until a deploy first runs it)."""

    id: int | None
    key: str = Field(description="e.g. service:checkout-api@production, team:shop, default:careful")
    scope: Literal["service", "team", "default", "product"]
    ref: str
    environment: str | None = Field(description="None: every environment")
    name: str
    version: int | None = Field(description="The current version; None for a product default never run")
    digest: str = Field(description="SHA-256 of the current version's body (canonical JSON)")
    updated_by: str | None
    updated_at: datetime | None


class PipelineDetail(PipelineOut):
    pipeline: Pipeline


class PipelineVersionOut(BaseModel):
    pipeline_id: int
    version: int
    digest: str
    created_by: str
    created_at: datetime
    pipeline: dict[str, Any] = Field(description="The body of this version, as stored")


class ApplyResult(BaseModel):
    outcome: Literal["created", "updated", "unchanged"] = Field(
        description="created: a new pipeline (version 1); updated: a new version; unchanged: the same "
        "body as the current version, nothing written"
    )
    pipeline: PipelineOut
    previous_version: int | None
    weakened: list[str] = Field(
        default=[],
        description="Approvals this apply removed or loosened where the two-person rule applies "
        "(admins only)",
    )


class QueryView(BaseModel):
    name: str
    query: str
    condition: str


class StepView(BaseModel):
    """One step as a person reads it."""

    index: int
    kind: str
    name: str | None
    title: str = Field(description="One sentence, e.g. 'Send 10% of the traffic to the new version'")
    details: list[str]
    seconds: int | None = Field(description="How long a wait or an analysis lasts")
    queries: list[QueryView] = []


class ChosenPipeline(BaseModel):
    """The pipeline a deploy of `service` to `environment` gets, where it is kept and why."""

    service: str
    environment: str
    production: bool
    tier: int | None
    team: str | None
    source: PipelineOut
    reasons: list[str] = Field(description="Why: the deciding reason first, then overrides passed over")
    warnings: list[str] = Field(
        description="What the deploy must add to this pipeline, e.g. the two-person rule"
    )
    pipeline: Pipeline
    steps: list[StepView]
    bake_seconds: int = Field(description="What `wait: {bake: tier}` waits for this service")


class PipelineVersionRef(NamedTuple):
    """The exact pipeline a deploy ran: what a deploy record stores."""

    pipeline_id: int
    version: int
    digest: str
