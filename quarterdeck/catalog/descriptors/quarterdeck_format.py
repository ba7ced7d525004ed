"""The `quarterdeck.yaml` format (docs/descriptor-format.md): its schema and its reading into drafts."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from quarterdeck.catalog.descriptors.drafts import (
    Draft,
    EntityDraft,
    Origin,
    PersonDraft,
    Problem,
    ServiceDraft,
    SystemDraft,
    TeamDraft,
)
from quarterdeck.catalog.descriptors.names import NAMESPACED_SLUG_PATTERN, SLUG_PATTERN, TAG_PATTERN
from quarterdeck.catalog.descriptors.yaml_documents import Document

API_VERSION = "quarterdeck/v1"


def _segments_fit(value: str) -> str:
    if any(len(part) > 63 for part in value.split("/")):
        raise PydanticCustomError("string_too_long", "each part of a slug must be at most 63 characters")
    return value


def _said(sentence: str) -> WrapValidator:
    """Says `sentence` ("must be ...") where a value does not match its pattern, instead of
    Pydantic's "String should match pattern '^[a-z0-9]+...'": the import report, the entity's page
    and the API's errors all read it. The JSON Schema keeps the pattern."""

    def explain(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == "string_pattern_mismatch":
                raise PydanticCustomError("string_pattern_mismatch", sentence) from None
            raise

    return WrapValidator(explain)


SLUG_SENTENCE = (
    "must be lowercase letters and digits with '-', '_' or '.' between them (like checkout-api), "
    "optionally after a namespace and '/' (like shop/checkout-api)"
)

Slug = Annotated[
    str,
    StringConstraints(pattern=NAMESPACED_SLUG_PATTERN, max_length=127),
    AfterValidator(_segments_fit),
    _said(SLUG_SENTENCE),
]
Key = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN, max_length=63),
    _said("must be lowercase letters and digits with '-', '_' or '.' between them, like cost-center"),
]
Word = Annotated[
    str,
    StringConstraints(pattern=r"^\S{1,100}$"),
    _said("must be one word of 1 to 100 characters, without spaces, like production"),
]
OwnerRef = Annotated[
    str,
    StringConstraints(
        pattern=rf"(?:^(?:user:|group:)?{NAMESPACED_SLUG_PATTERN[1:]})|(?:^[^@\s]+@[^@\s]+$)", max_length=320
    ),
    _said("must be a team's slug (like payments, or group:payments), user: and a handle, or an e-mail"),
]
ServiceRef = Annotated[
    str,
    StringConstraints(
        pattern=rf"^(?:(?:component|api|resource):)?{NAMESPACED_SLUG_PATTERN[1:]}", max_length=140
    ),
    _said("must be a service's slug (like checkout-api), optionally after component:, api: or resource:"),
]
Tag = Annotated[
    str,
    StringConstraints(pattern=TAG_PATTERN, max_length=63),
    _said("must be lowercase letters, digits, ':', '+' or '#', with '-' between words, like pci-dss"),
]
PersonRef = Annotated[str, StringConstraints(min_length=1, max_length=320, strip_whitespace=True)]
Role = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]+(?:[-_ ][a-z0-9]+)*$", max_length=100),
    _said("must be lowercase letters and digits with '-', '_' or a space between them, like tech-lead"),
]
Text = Annotated[str, StringConstraints(max_length=20000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=300, strip_whitespace=True)]
Url = Annotated[
    str,
    StringConstraints(pattern=r"^(https?|mailto|slack|msteams):[^\s]+$", max_length=2000),
    _said("must be an http, https, mailto, slack or msteams URL without spaces"),
]
LinkKind = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9-]+$", max_length=50),
    _said("must be lowercase letters, digits and '-', like runbook"),
]
Image = Annotated[
    str,
    StringConstraints(pattern=r"^[a-zA-Z0-9][^\s@]*$", max_length=500),
    _said(
        "must be an image repository starting with a letter or digit, without spaces or '@', "
        "like registry.example.com/shop/checkout"
    ),
]
Email = Annotated[
    str,
    StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320),
    _said("must be an e-mail address, like ada@example.com"),
]


def _finite(value: str | int | float | bool) -> str | int | float | bool:
    """JSON has no NaN or infinity (PostgreSQL's json type refuses them), yet Python's parsers, YAML's
    `.nan`/`.inf` and overflowing literals such as 1e400 produce them: refuse them where they come in."""
    if isinstance(value, float) and not math.isfinite(value):
        spelling = "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
        raise PydanticCustomError(
            "finite_number", "must be a finite number, not {number}", {"number": spelling}
        )
    return value


CustomValue = Annotated[str | int | float | bool, AfterValidator(_finite)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Link(_Strict):
    kind: LinkKind = "other"
    url: Url
    title: Annotated[str, StringConstraints(max_length=300)] | None = None


class Contact(_Strict):
    role: Role
    person: PersonRef


class Member(_Strict):
    person: PersonRef
    role: Role = "member"


class _Common(_Strict):
    annotations: dict[Annotated[str, StringConstraints(max_length=317)], str] = Field(default_factory=dict)
    links: list[Link] = Field(default_factory=list)


class ServiceFields(_Common):
    """A service as the API takes it; the descriptor adds apiVersion and kind."""

    slug: Slug
    title: ShortText | None = None
    description: Text = ""
    type: Word = "service"
    lifecycle: Word = "production"
    tier: Annotated[int, Field(ge=1, le=4, strict=True)] | None = None
    system: Slug | None = None
    owner: OwnerRef
    contacts: list[Contact] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    depends_on: list[ServiceRef] = Field(default_factory=list)
    image: Image | None = None
    custom: dict[Key, CustomValue] = Field(default_factory=dict)


class TeamFields(_Common):
    slug: Slug
    name: ShortText
    description: Text = ""
    email: Email | None = None
    chat: Annotated[str, StringConstraints(max_length=200)] | None = None
    parent: Slug | None = None
    members: list[Member] = Field(default_factory=list)


class PersonFields(_Common):
    """A person as the API takes it: people imported from Backstage may have no e-mail."""

    email: Email | None = None

    @model_validator(mode="after")
    def _named_somehow(self) -> PersonFields:
        if not self.email and not self.handle:
            raise ValueError("a person needs an e-mail or a handle")
        return self

    name: ShortText
    handle: Slug | None = None
    chat: Annotated[str, StringConstraints(max_length=200)] | None = None
    title: Annotated[str, StringConstraints(max_length=300)] | None = None
    teams: list[Slug] = Field(default_factory=list)


class SystemFields(_Common):
    slug: Slug
    title: ShortText | None = None
    description: Text = ""
    owner: OwnerRef | None = None
    domain: Slug | None = None


class ServiceDescriptor(ServiceFields):
    apiVersion: Literal["quarterdeck/v1"]
    kind: Literal["Service"]


class TeamDescriptor(TeamFields):
    apiVersion: Literal["quarterdeck/v1"]
    kind: Literal["Team"]


class PersonDescriptor(PersonFields):
    apiVersion: Literal["quarterdeck/v1"]
    kind: Literal["Person"]
    email: Email


class SystemDescriptor(SystemFields):
    apiVersion: Literal["quarterdeck/v1"]
    kind: Literal["System"]


FIELDS_MODELS: dict[str, type[_Common]] = {
    "service": ServiceFields,
    "team": TeamFields,
    "person": PersonFields,
    "system": SystemFields,
}

AnyDescriptor = Annotated[
    ServiceDescriptor | TeamDescriptor | PersonDescriptor | SystemDescriptor, Field(discriminator="kind")
]
DESCRIPTOR_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyDescriptor)


def descriptor_json_schema() -> dict[str, Any]:
    schema = DESCRIPTOR_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Quarterdeck descriptor (one YAML document of quarterdeck.yaml)"
    return schema


def _owner_ref(ref: str) -> str:
    """Owners are stored as a team slug, `user:handle` or an e-mail, in lower case."""
    return ref.lower().removeprefix("group:")


def _dependency(ref: str) -> tuple[str, str, str]:
    kind, _, slug = ref.rpartition(":")
    return ("depends_on", kind or "component", slug)


def _links(links: list[Link]) -> list[dict[str, str]]:
    return [{"kind": link.kind, "url": link.url, "title": link.title or ""} for link in links]


def to_entity(parsed: Any) -> EntityDraft:
    """The draft of validated fields (a descriptor document or an API body)."""
    if isinstance(parsed, ServiceFields):
        return ServiceDraft(
            slug=parsed.slug,
            title=parsed.title or parsed.slug,
            description=parsed.description,
            type=parsed.type,
            lifecycle=parsed.lifecycle,
            tier=parsed.tier,
            system_ref=parsed.system,
            owner_ref=_owner_ref(parsed.owner),
            contacts=[(c.role, c.person.lower()) for c in parsed.contacts],
            links=_links(parsed.links),
            tags=sorted(set(parsed.tags)),
            dependencies=[_dependency(dep) for dep in dict.fromkeys(parsed.depends_on)],
            image_repository=parsed.image,
            annotations=parsed.annotations,
            custom_fields=parsed.custom,
        )
    if isinstance(parsed, TeamFields):
        return TeamDraft(
            slug=parsed.slug,
            name=parsed.name,
            description=parsed.description,
            email=parsed.email,
            chat_channel=parsed.chat,
            parent_ref=parsed.parent,
            members=[(m.person.lower(), m.role) for m in parsed.members],
            links=_links(parsed.links),
            annotations=parsed.annotations,
        )
    if isinstance(parsed, PersonFields):
        return PersonDraft(
            slug=parsed.handle or (parsed.email or "").split("@", 1)[0].lower(),
            name=parsed.name,
            email=parsed.email.lower() if parsed.email else None,
            chat_handle=parsed.chat,
            title=parsed.title,
            teams=list(dict.fromkeys(parsed.teams)),
            links=_links(parsed.links),
            annotations=parsed.annotations,
        )
    assert isinstance(parsed, SystemFields)
    return SystemDraft(
        slug=parsed.slug,
        title=parsed.title or parsed.slug,
        description=parsed.description,
        owner_ref=_owner_ref(parsed.owner) if parsed.owner else None,
        domain_ref=parsed.domain,
        links=_links(parsed.links),
        annotations=parsed.annotations,
    )


def validation_problems(exc: ValidationError, doc: Document, file: str) -> list[Problem]:
    """Pydantic's errors as located problems: `tier: Input should be less than or equal to 4`."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part not in _MODEL_TAGS]
        path = ".".join(loc)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        elif error["type"] == "missing":
            message = f"{path} is required"
        elif path:
            message = f"{path}: {message}"
        problems.append(Problem(file, doc.line_of(path), message, path or None))
    return problems


_MODEL_TAGS = {"Service", "Team", "Person", "System"}


def read_quarterdeck_document(doc: Document, file: str) -> tuple[Draft | None, list[Problem]]:
    if not isinstance(doc.data, dict):
        return None, [Problem(file, doc.line, "a descriptor document must be a mapping")]
    kind = doc.data.get("kind")
    if kind not in _MODEL_TAGS:
        expected = ", ".join(sorted(_MODEL_TAGS))
        return None, [Problem(file, doc.line_of("kind"), f"kind {kind!r} is not one of {expected}", "kind")]
    try:
        parsed = DESCRIPTOR_ADAPTER.validate_python(doc.data)
    except ValidationError as exc:
        return None, validation_problems(exc, doc, file)
    return Draft(to_entity(parsed), Origin(file, doc.line, doc.text)), []
