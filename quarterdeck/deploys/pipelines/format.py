"""The pipeline format: what one pipeline file holds, as Pydantic models (its JSON Schema is generated
from them; rules.py holds the rules across steps that a schema cannot say). Pure: no database, no files.

A pipeline is a name, what it applies to, what to do on failure, and ordered steps; each step is a
mapping with one key naming its type (`- deploy: {weight: 10}`), as Argo Rollouts' canary steps are
(`- setWeight: 10`). docs/pipelines.md describes every field with worked examples.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from quarterdeck.deploys.pipelines.expressions import (
    DURATION,
    MAX_SECONDS,
    check_placeholders,
    duration_words,
    parse_condition,
    parse_duration,
    quoted,
)

MAX_STEPS = 50
MAX_COUNT = 1000
MAX_INSTANCES = 1000
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,98}[a-z0-9])?$"
KEY_PATTERN = r"^[a-z0-9]([a-z0-9_-]{0,98}[a-z0-9])?$"
SLUG_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,98}[a-z0-9])?$"
LABEL_PATTERN = r"^[^\x00-\x1f\x7f]+$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NAME_PATTERN)]
"""A pipeline's name: lower-case letters, digits, '.', '_' and '-', at most 100 characters."""
Key = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=KEY_PATTERN)]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=SLUG_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=LABEL_PATTERN)]


def _at_least(minimum: int) -> AfterValidator:
    """A check that a duration is written right and lasts from `minimum` seconds to 24 h."""

    def check(text: str) -> str:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise PydanticCustomError("duration", str(exc)) from None
        if seconds < minimum:
            raise PydanticCustomError(
                "duration_too_short",
                f"{quoted(text)} is shorter than the shortest allowed, {duration_words(minimum)}",
            )
        if seconds > MAX_SECONDS:
            raise PydanticCustomError(
                "duration_too_long", f"{quoted(text)} is longer than 24 h, the longest allowed"
            )
        return text

    return AfterValidator(check)


def _written_as_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise PydanticCustomError(
            "duration", f'{value} has no unit; write it as text such as "{value}s" or "{value}m"'
        )
    return value


DURATION_FIELD = Field(
    max_length=20, json_schema_extra={"pattern": DURATION.pattern, "examples": ["90s", "30m", "2h"]}
)
Duration = Annotated[str, BeforeValidator(_written_as_text), _at_least(1), DURATION_FIELD]
"""A duration from 1 s to 24 h: "90s", "30m", "2h", "1h30m"."""
Interval = Annotated[str, BeforeValidator(_written_as_text), _at_least(10), DURATION_FIELD]
"""How often an analysis measures: 10 s to 24 h."""
BakeDuration = Annotated[str, BeforeValidator(_written_as_text), _at_least(0), DURATION_FIELD]


class _Spec(BaseModel):
    # Strict: a YAML `weight: "10"` or `duration: 30` is a mistake to report, not to guess at.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---------------------------------------------------------------- steps


def _instances(value: Any) -> int | str:
    if value == "all" or (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_INSTANCES
    ):
        return value  # type: ignore[no-any-return]
    raise PydanticCustomError("instances", f"instances is a count from 1 to {MAX_INSTANCES}, or all")


Instances = Annotated[
    int | str,
    PlainValidator(_instances),
    WithJsonSchema(
        {
            "description": "Instances running the new version: a count, or all",
            "oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_INSTANCES}, {"const": "all"}],
        }
    ),
]


class DeploySpec(_Spec):
    """Send traffic to the new version: a share of requests (`weight`), or a number of instances."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["weight"]}, {"required": ["instances"]}]}
    )

    name: Label | None = None
    weight: (
        Annotated[int, Field(ge=0, le=100, description="Percent of traffic the new version takes")] | None
    ) = None
    instances: Instances | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> DeploySpec:
        if (self.weight is None) == (self.instances is None):
            which = "not both" if self.weight is not None else "one of them"
            raise PydanticCustomError(
                "deploy_unit",
                f"give weight (0-100, percent of traffic) or instances (a count, or all), {which}",
            )
        return self

    @property
    def full(self) -> bool:
        """Whether this step puts the new version everywhere."""
        return self.weight == 100 or self.instances == "all"

    @property
    def amount(self) -> float:
        """How far the step goes, comparable between steps of one unit ("all" beats every count)."""
        if self.weight is not None:
            return float(self.weight)
        return float("inf") if self.instances == "all" else float(self.instances or 0)


class WaitSpec(_Spec):
    """Wait before the next step: a fixed `duration`, or the bake time of the service's tier."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["duration"]}, {"required": ["bake"]}]}
    )

    name: Label | None = None
    duration: Duration | None = None
    bake: Literal["tier"] | None = Field(
        default=None, description="Take the wait from the bake time of the service's tier (see the defaults)"
    )
    skippable: bool = Field(default=False, description="The deployer may skip the rest of this wait")

    @model_validator(mode="after")
    def _one_length(self) -> WaitSpec:
        if (self.duration is None) == (self.bake is None):
            which = "not both" if self.duration is not None else "one of them"
            raise PydanticCustomError("wait_length", f'give duration (e.g. "30m") or bake: tier, {which}')
        return self


class QuerySpec(_Spec):
    """One PromQL query and the condition each of its measurements must meet."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = Field(
        description="PromQL; may name {service}, {env}, {version} and {baseline_version}"
    )
    condition: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description='An absolute threshold ("< 0.01", "<= 250") or one relative to the baseline '
        '("<= baseline * 1.1")'
    )

    @field_validator("query")
    @classmethod
    def _placeholders(cls, query: str) -> str:
        try:
            check_placeholders(query)
        except ValueError as exc:
            raise PydanticCustomError("placeholder", str(exc)) from None
        return query

    @field_validator("condition")
    @classmethod
    def _comparison(cls, condition: str, info: ValidationInfo) -> str:
        try:
            parsed = parse_condition(condition)
        except ValueError as exc:
            raise PydanticCustomError("condition", str(exc)) from None
        query = info.data.get("query")
        if parsed.relative and isinstance(query, str) and "{version}" not in query:
            raise PydanticCustomError(
                "condition_needs_version",
                f"{quoted(condition)} compares with the baseline, so the query is run for the new and "
                "the live version: it must select by {version}",
            )
        return condition


class AnalysisSpec(_Spec):
    """Measure the new version `count` times, every `interval`, against each query's condition."""

    name: Label | None = None
    queries: Annotated[
        dict[Key, QuerySpec],
        Field(min_length=1, max_length=20, description="Query name -> PromQL query and condition"),
    ]
    interval: Interval = "1m"
    count: Annotated[int, Field(ge=1, le=MAX_COUNT, description="Measurements to take")] = 5
    failure_limit: Annotated[
        int,
        Field(ge=0, le=MAX_COUNT, description="Failed measurements tolerated; one more fails the analysis"),
    ] = 0
    inconclusive_limit: Annotated[
        int,
        Field(
            ge=0, le=MAX_COUNT, description="Measurements without data tolerated; one more pauses the deploy"
        ),
    ] = 0

    @model_validator(mode="after")
    def _bounded(self) -> AnalysisSpec:
        total = parse_duration(self.interval) * self.count
        if total > MAX_SECONDS:
            raise PydanticCustomError(
                "analysis_too_long",
                f"interval {self.interval} x count {self.count} runs for {duration_words(total)}; "
                "an analysis runs 24 h at most",
            )
        for field in ("failure_limit", "inconclusive_limit"):
            if getattr(self, field) > self.count:
                raise PydanticCustomError(
                    "limit_above_count",
                    f"{field} {getattr(self, field)} is more than the {self.count} measurements taken",
                )
        return self

    @property
    def seconds(self) -> int:
        return parse_duration(self.interval) * self.count


class TeamRoleApprover(_Spec):
    team_role: Literal["owner", "member"] = Field(description="A role in the service's owning team")


class TeamApprover(_Spec):
    team: Slug = Field(description="A team in the catalog, by slug")


def _approver_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [kind for kind in ("team_role", "team") if kind in value]
        return kinds[0] if len(kinds) == 1 else None
    if isinstance(value, TeamRoleApprover):
        return "team_role"
    return "team" if isinstance(value, TeamApprover) else None


Approver = Annotated[
    Annotated[TeamRoleApprover, Tag("team_role")] | Annotated[TeamApprover, Tag("team")],
    Discriminator(
        _approver_kind,
        custom_error_type="approver",
        custom_error_message="who is {team_role: owner} or {team_role: member} (a role in the service's "
        "owning team), or {team: <slug>} (a named team)",
    ),
]


class ApprovalSpec(_Spec):
    """Stop until someone `who` names says yes; with `two_person`, someone other than the deployer,
    through the change requests (/approvals)."""

    name: Label | None = None
    who: Approver
    two_person: bool = Field(default=False, description="The person who approves is not the deployer")


HEADER_SET = r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$"


def _web_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("webhook_url", f"{quoted(url)} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise PydanticCustomError(
            "webhook_secret",
            "the URL holds a user name or password; put credentials in a header set of QD_WEBHOOK_HEADERS "
            "and name it under headers",
        )
    return url


class NotifySpec(_Spec):
    """POST the deploy's state (service, version, environment, step, status) to a webhook."""

    name: Label | None = None
    webhook: Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_web_url)] = (
        Field(description="http:// or https:// URL")
    )
    headers: Annotated[
        list[Annotated[str, StringConstraints(pattern=HEADER_SET, max_length=64)]],
        Field(
            max_length=10,
            description="Names of header sets in the QD_WEBHOOK_HEADERS setting: no secrets in the file",
        ),
    ] = []

    @field_validator("headers")
    @classmethod
    def _unique(cls, headers: list[str]) -> list[str]:
        if len(set(headers)) != len(headers):
            raise PydanticCustomError("duplicate", "each header set is named once")
        return headers


def _argv(value: Any) -> Any:
    if isinstance(value, str):
        raise PydanticCustomError(
            "shell_string",
            'command is a list of arguments, e.g. ["./smoke-test", "--env", "{env}"]; a shell string is '
            "not run",
        )
    return value


def _argument(argument: str) -> str:
    if "\x00" in argument:
        raise PydanticCustomError("nul", "an argument holds a NUL character")
    try:
        check_placeholders(argument)
    except ValueError as exc:
        raise PydanticCustomError("placeholder", str(exc)) from None
    return argument


class RunSpec(_Spec):
    """Run a command (no shell) with a time limit; it passes when it exits 0."""

    name: Label | None = None
    command: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=4000), AfterValidator(_argument)]],
        BeforeValidator(_argv),
        Field(min_length=1, max_length=100, description="The program and its arguments, one string each"),
    ]
    timeout: Duration = "10m"


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    kind: ClassVar[str]

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)

    @property
    def title(self) -> str | None:
        name: str | None = self.spec.name
        return name


class DeployStep(_Step):
    kind: ClassVar[str] = "deploy"
    deploy: DeploySpec


class WaitStep(_Step):
    kind: ClassVar[str] = "wait"
    wait: WaitSpec


class AnalysisStep(_Step):
    kind: ClassVar[str] = "analysis"
    analysis: AnalysisSpec


class ApprovalStep(_Step):
    kind: ClassVar[str] = "approval"
    approval: ApprovalSpec


class NotifyStep(_Step):
    kind: ClassVar[str] = "notify"
    notify: NotifySpec


class RunStep(_Step):
    kind: ClassVar[str] = "run"
    run: RunSpec


STEP_TYPES: dict[str, type[_Step]] = {
    step.kind: step for step in (DeployStep, WaitStep, AnalysisStep, ApprovalStep, NotifyStep, RunStep)
}
SPEC_TYPES: dict[str, type[BaseModel]] = {
    "deploy": DeploySpec,
    "wait": WaitSpec,
    "analysis": AnalysisSpec,
    "approval": ApprovalSpec,
    "notify": NotifySpec,
    "run": RunSpec,
}


def step_kind(value: Any) -> str | None:
    """The type of a step: the one key of its mapping that names a step type."""
    if isinstance(value, _Step):
        return value.kind
    if isinstance(value, dict):
        kinds = [kind for kind in STEP_TYPES if kind in value]
        return kinds[0] if len(kinds) == 1 else None
    return None


Step = Annotated[
    Annotated[DeployStep, Tag("deploy")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[AnalysisStep, Tag("analysis")]
    | Annotated[ApprovalStep, Tag("approval")]
    | Annotated[NotifyStep, Tag("notify")]
    | Annotated[RunStep, Tag("run")],
    Discriminator(
        step_kind,
        custom_error_type="step_type",
        custom_error_message="a step is a mapping with one of the keys deploy, wait, analysis, approval, "
        "notify or run, e.g. `- deploy: {weight: 10}`",
    ),
]


# ---------------------------------------------------------------- the pipeline


class AppliesTo(_Spec):
    """Which deploys a pipeline is for: tiers, and production or not (or named environments). Left out,
    a condition holds for every deploy."""

    tiers: Annotated[list[Literal[1, 2, 3, 4]], Field(min_length=1, max_length=4)] | None = None
    environment_kind: Literal["production", "non-production"] | None = None
    environments: Annotated[list[Slug], Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AppliesTo:
        if self.environment_kind is not None and self.environments is not None:
            raise PydanticCustomError(
                "applies_to", "give environment_kind or environments, not both: environments are named ones"
            )
        for field in ("tiers", "environments"):
            values = getattr(self, field)
            if values is not None and len(set(values)) != len(values):
                raise PydanticCustomError("duplicate", f"{field} names a value twice")
        return self

    def mismatch(self, *, service: str, tier: int | None, environment: str, production: bool) -> str | None:
        """Why this does not apply to a deploy of `service` (of `tier`) to `environment`; None if it does."""
        if self.tiers is not None and tier not in self.tiers:
            listed = ", ".join(str(t) for t in self.tiers)
            has = f"is tier {tier}" if tier is not None else "has no tier"
            return f"it is for tier{'s' if len(self.tiers) > 1 else ''} {listed} and {service} {has}"
        if self.environment_kind == "production" and not production:
            return f"it is for production environments and {environment} is not one"
        if self.environment_kind == "non-production" and production:
            return f"it is for non-production environments and {environment} is production"
        if self.environments is not None and environment not in self.environments:
            return f"it is for the environments {', '.join(self.environments)}, not {environment}"
        return None


class Pipeline(_Spec):
    """One deploy pipeline: how a new version reaches all of the traffic of an environment."""

    model_config = ConfigDict(title="Quarterdeck deploy pipeline")

    apiVersion: Literal["quarterdeck/v1"] = "quarterdeck/v1"
    kind: Literal["Pipeline"] = "Pipeline"
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    on_failure: Literal["rollback", "pause"] = Field(
        default="rollback",
        description="What a failed step does: roll back to the version live before (default), or pause "
        "for a person to decide",
    )
    steps: Annotated[list[Step], Field(min_length=1, max_length=MAX_STEPS)]

    def body(self) -> dict[str, Any]:
        """The pipeline as stored and hashed: every field, defaults included, in JSON types."""
        return self.model_dump(mode="json")


class BakeTimes(_Spec):
    """How long `wait: {bake: tier}` waits, by the service's tier."""

    tier1: BakeDuration
    tier2: BakeDuration
    tier3: BakeDuration
    tier4: BakeDuration
    untiered: BakeDuration

    def seconds(self, tier: int | None) -> int:
        return parse_duration(getattr(self, f"tier{tier}") if tier in (1, 2, 3, 4) else self.untiered)


class ProductDefaults(_Spec):
    """What ships with Quarterdeck (defaults.yaml): the bake times, and the default pipelines, tried
    in order: the first that applies to a deploy is its default."""

    bake_times: BakeTimes
    pipelines: Annotated[list[Pipeline], Field(min_length=1, max_length=50)]


PIPELINE_ADAPTER: TypeAdapter[Pipeline] = TypeAdapter(Pipeline)


def pipeline_json_schema() -> dict[str, Any]:
    schema = PIPELINE_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Quarterdeck deploy pipeline (one YAML document)"
    return schema
