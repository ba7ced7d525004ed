"""Rollout API shapes: what starting one takes, a rollout as the API, the CLI and the live page read it
(state, steps with timings, analysis figures, approvals, countdowns, the pipeline version), its events,
and freeze windows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from quarterdeck.deploys.rollouts.states import RolloutState, StepState
from quarterdeck.deploys.schemas import Slug, Version

Control = Literal["pause", "resume", "skip", "promote", "retry", "abort", "approve", "reject"]
CONTROLS: tuple[Control, ...] = ("pause", "resume", "skip", "promote", "retry", "abort", "approve", "reject")


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    version: Version
    environment: Slug
    queue: bool = Field(
        default=False, description="Queue behind the rollout running in that environment instead of a 409"
    )
    emergency: bool = Field(
        default=False,
        description="Deploy into a frozen environment: needs an approved emergency request "
        "(POST /api/v1/services/{slug}/emergency-requests)",
    )


class EmergencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    version: Version
    environment: Slug
    reason: Annotated[str, StringConstraints(min_length=3, max_length=2000)]


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class QueryResultOut(BaseModel):
    """One query's measurement in one interval: the value, the baseline's (relative conditions), the
    number it was compared with, and the verdict."""

    query: str
    condition: str
    value: float | None
    baseline: float | None
    limit: float | None
    verdict: Literal["pass", "fail", "inconclusive"]
    note: str = ""


class IntervalOut(BaseModel):
    n: int
    at: datetime
    verdict: Literal["pass", "fail", "inconclusive"]
    results: list[QueryResultOut]


class AnalysisOut(BaseModel):
    count: int
    interval_seconds: int
    failure_limit: int
    inconclusive_limit: int
    measured: int
    failures: int
    inconclusive: int
    intervals: list[IntervalOut] = Field(description="The newest 100 intervals, oldest first")


class ApprovalOut(BaseModel):
    request_id: int | None
    status: str
    who: str = Field(description="Who may approve, in words")
    two_person: bool
    asked_at: datetime | None
    waiting_seconds: float | None = Field(description="How long it has waited for a decision so far")
    decided_by: str | None = None
    decided_at: datetime | None = None
    url: str = "/approvals"


class StepOut(BaseModel):
    position: int = Field(description="0-based; step n of the page is position n-1")
    kind: str
    name: str | None
    title: str
    state: StepState
    runs: int
    started_at: datetime | None
    finished_at: datetime | None
    active_seconds: float
    waiting_seconds: float
    due_at: datetime | None = Field(description="When a wait ends or the next analysis interval is due")
    seconds_left: float | None = Field(description="Until due_at, from when this answer was made")
    skippable: bool
    spec: dict[str, Any]
    analysis: AnalysisOut | None = None
    approval: ApprovalOut | None = None
    error: str | None = None
    log_lines: int
    log_dropped: int


class PipelineRefOut(BaseModel):
    id: int
    version: int
    digest: str
    name: str
    on_failure: str


class RolloutOut(BaseModel):
    id: int
    url: str
    service: str
    environment: str
    version: str
    image: str | None
    baseline_version: str | None
    state: RolloutState
    final: bool
    reason: str = Field(description="One sentence: why it paused, rolled back, failed or was aborted")
    current_step: int
    weight: int = Field(description="Share of traffic (%) the new version takes now")
    revision: int = Field(description="Counts the rollout's changes")
    started_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deploy_id: int | None
    deploy_url: str | None
    emergency_request: int | None
    queued_behind: int | None = Field(description="The active rollout a queued one waits for")
    pipeline: PipelineRefOut
    steps: list[StepOut]
    active_seconds: float
    waiting_seconds: float
    last_event_id: int
    controls: list[Control] = Field(description="The controls the rollout's state allows now")


class RolloutBriefOut(BaseModel):
    """A rollout in a list: where, what, how it stands."""

    id: int
    url: str
    environment: str
    version: str
    state: RolloutState
    started_by: str
    created_at: datetime
    finished_at: datetime | None
    reason: str


class RolloutEventOut(BaseModel):
    id: int
    at: datetime
    type: str
    payload: dict[str, Any]


class RolloutEvents(BaseModel):
    rollout_id: int
    state: RolloutState
    final: bool
    events: list[RolloutEventOut]
    last_id: int = Field(description="Ask for the events after this id next")


class StepLogOut(BaseModel):
    rollout_id: int
    position: int
    lines: list[str]
    dropped: int


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    weekly: bool = Field(default=False, description="Repeat every week at the same times")


class FreezeOut(BaseModel):
    id: int
    environment: str
    starts_at: datetime
    ends_at: datetime
    weekly: bool
    reason: str
    created_by: str
    created_at: datetime
    active: bool = Field(description="Whether deploys are refused now")
    next_start: datetime | None = Field(description="The next time it starts (now, if it is active)")
