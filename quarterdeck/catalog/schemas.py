"""What the catalog's API and pages return (read models with references resolved), and what other domains
read of it: a service's ServiceRef, the filters of the service list."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from quarterdeck.access.schemas import Resource


@dataclass(frozen=True, kw_only=True)
class ServiceFilters:
    """What the service list is narrowed by; None is "any"."""

    owner: str | None = None
    tier: int | None = None
    lifecycle: str | None = None
    tag: str | None = None
    system: str | None = None
    kind: str | None = None
    type: str | None = None
    text: str | None = None


class ServiceRef(BaseModel):
    """A service as other domains need it: who owns it, how critical it is, where its images are, and
    what the access policy judges changes of it by. Read in one small query, never a whole entity."""

    model_config = ConfigDict(frozen=True)

    slug: str
    kind: str
    title: str
    owner: str | None
    tier: int | None
    lifecycle: str
    image_repository: str | None

    def resource(self, *, environment: str | None = None, production: bool = False) -> Resource:
        """The policy's view of a change of this service, in an environment when the change is to one."""
        return Resource(
            type="service",
            key=self.slug,
            team=self.owner,
            tier=self.tier,
            environment=environment,
            production=production,
        )


class Ref(BaseModel):
    """A reference to another entity: `exists` is false when nothing in the catalog has that name."""

    type: str
    ref: str
    slug: str | None = None
    name: str | None = None
    url: str | None = None
    exists: bool = False


class PersonBrief(BaseModel):
    slug: str
    name: str
    email: str | None
    chat_handle: str | None
    title: str | None = None
    url: str


class Contact(BaseModel):
    role: str
    ref: str
    person: PersonBrief | None


class TeamBrief(BaseModel):
    slug: str
    name: str
    email: str | None
    chat_channel: str | None
    url: str


class Owner(BaseModel):
    ref: str
    team: TeamBrief | None = None
    person: PersonBrief | None = None


class Edge(BaseModel):
    relation: str
    kind: str
    slug: str
    title: str | None = None
    tier: int | None = None
    url: str | None = None
    exists: bool = False


class SourceInfo(BaseModel):
    source: str
    file: str | None
    line: int | None
    detached_from: str | None
    descriptor: str | None


class ImportError_(BaseModel):
    file: str | None
    line: int | None
    field: str | None = None
    message: str


class ReferenceProblem(BaseModel):
    """A name this entity gives for another that nothing in the catalog has (references.py): its
    field (`owner`, `system`, `depends_on`, `contacts`, `parent`, `members`, ...), the name as
    written, and what it should name (`team`, `person`, `system`, `service`)."""

    field: str
    ref: str
    target: str
    message: str


class DanglingOut(ReferenceProblem):
    """A dangling reference in the admins' list: who refers, where its descriptor was imported from
    (`file`:`line` in `source`; none for entities made in the portal), and the nearest names."""

    entity_type: str
    entity: str
    kind: str | None
    url: str
    source: str | None
    file: str | None
    line: int | None
    suggestions: list[str]


class AnnotationLink(BaseModel):
    """A well-known annotation as the service page shows it (annotation_links.py): `url` when its value
    has the shape the key expects, else `reason` says why it is text; a `masked` value is a secret's."""

    key: str
    label: str
    value: str
    url: str | None = None
    reason: str | None = None
    masked: bool = False


class ServiceSummary(BaseModel):
    kind: str
    slug: str
    title: str
    description: str
    type: str
    lifecycle: str
    tier: int | None
    owner: str | None
    system: str | None
    tags: list[str]
    url: str


class ServiceOut(ServiceSummary):
    owner_detail: Owner | None
    system_detail: Ref | None
    contacts: list[Contact]
    links: list[dict[str, str]]
    depends_on: list[Edge]
    dependents: list[Edge]
    image: str | None
    definition: str | None
    annotations: dict[str, str]
    annotation_links: list[AnnotationLink] = []
    """The annotations of known keys as links out, by the rules of the write that stored the answer
    (QD_ANNOTATION_LINKS then: `quarterdeck catalog rebuild` applies a changed setting)."""
    custom: dict[str, Any]
    source: SourceInfo
    import_errors: list[ImportError_]
    problems: list[ReferenceProblem] = []
    """References that name nothing in the catalog; the page and `GET /api/v1/references` add the
    nearest names (they depend on the whole catalog, a stored answer only on its neighbours)."""
    version: int
    etag: str
    created_at: datetime
    updated_at: datetime


class Member(BaseModel):
    role: str
    ref: str
    person: PersonBrief | None


class TeamOut(TeamBrief):
    description: str
    type: str
    parent: Ref | None
    children: list[TeamBrief]
    members: list[Member]
    services: list[ServiceSummary]
    links: list[dict[str, str]]
    annotations: dict[str, str]
    source: SourceInfo
    import_errors: list[ImportError_]
    problems: list[ReferenceProblem] = []
    version: int
    etag: str


class PersonOut(PersonBrief):
    avatar_url: str | None
    teams: list[TeamBrief]
    contact_for: list[dict[str, str]]
    links: list[dict[str, str]]
    annotations: dict[str, str]
    source: SourceInfo
    import_errors: list[ImportError_]
    problems: list[ReferenceProblem] = []
    version: int
    etag: str


class SystemOut(BaseModel):
    slug: str
    kind: str
    title: str
    description: str
    owner: Owner | None
    domain: Ref | None
    systems: list[Ref]
    services: list[ServiceSummary]
    links: list[dict[str, str]]
    annotations: dict[str, str]
    source: SourceInfo
    import_errors: list[ImportError_]
    problems: list[ReferenceProblem] = []
    version: int
    etag: str
    url: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


class CursorPage(Page[T], Generic[T]):
    """A page of a long list. `next_cursor`, when there are more, asks for the page after this one
    in one index range (`?cursor=`), however deep: an offset (`?page=`) reads and skips every row
    before it."""

    next_cursor: str | None = None


def cursor_of(*key: str) -> str:
    """An opaque cursor for the row with this sort key."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def key_of_cursor(cursor: str, size: int) -> tuple[str, ...]:
    """The sort key in a cursor made by `cursor_of`; ValueError if it is not one."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise ValueError("not a cursor this API gave out") from exc
    if not isinstance(key, list) or len(key) != size or not all(isinstance(part, str) for part in key):
        raise ValueError("not a cursor this API gave out")
    return tuple(key)


class SearchHit(BaseModel):
    type: str
    slug: str
    name: str
    summary: str
    url: str
    matched_by: str


class Whois(BaseModel):
    """The answer to "who do I contact about X?" for a service, team or person."""

    query: str
    type: str
    slug: str
    name: str
    url: str
    answer: str
    owner: TeamBrief | None = None
    contacts: list[Contact] = []
    team_members: list[Member] = []
    channels: list[str] = []
    emails: list[str] = []
    teams: list[TeamBrief] = []
    services: list[ServiceSummary] = []
