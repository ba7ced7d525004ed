"""What a descriptor says about one entity, in Quarterdeck's terms, before it touches the database."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a descriptor, located as precisely as the input allows."""

    file: str
    line: int | None
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


@dataclass
class Origin:
    file: str
    line: int
    descriptor: str


@dataclass
class ServiceDraft:
    slug: str
    title: str
    kind: str = "component"
    description: str = ""
    type: str = "service"
    lifecycle: str = "production"
    tier: int | None = None
    system_ref: str | None = None
    owner_ref: str | None = None
    contacts: list[tuple[str, str]] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    dependencies: list[tuple[str, str, str]] = field(default_factory=list)
    image_repository: str | None = None
    definition: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    entity_type = "service"


@dataclass
class TeamDraft:
    slug: str
    name: str
    description: str = ""
    type: str = "team"
    email: str | None = None
    chat_channel: str | None = None
    parent_ref: str | None = None
    child_refs: list[str] = field(default_factory=list)
    members: list[tuple[str, str]] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    entity_type = "team"


@dataclass
class PersonDraft:
    slug: str
    name: str
    email: str | None = None
    chat_handle: str | None = None
    title: str | None = None
    avatar_url: str | None = None
    teams: list[str] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    entity_type = "person"


@dataclass
class SystemDraft:
    slug: str
    title: str
    kind: str = "system"
    description: str = ""
    owner_ref: str | None = None
    domain_ref: str | None = None
    links: list[dict[str, str]] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    entity_type = "system"


EntityDraft = ServiceDraft | TeamDraft | PersonDraft | SystemDraft


@dataclass
class Draft:
    """An entity draft with where it came from."""

    entity: EntityDraft
    origin: Origin

    @property
    def identity(self) -> tuple[str, str]:
        """(table, unique key): services are unique per kind, so the kind is part of the key."""
        entity = self.entity
        if isinstance(entity, ServiceDraft):
            return ("service", f"{entity.kind}:{entity.slug}")
        return (entity.entity_type, entity.slug)

    def content_hash(self) -> str:
        """Changes when the descriptor text, its place, or a $text file it pulls in changes."""
        definition = getattr(self.entity, "definition", None) or ""
        payload = "\0".join([self.origin.file, str(self.origin.line), self.origin.descriptor, definition])
        return hashlib.sha256(payload.encode()).hexdigest()
