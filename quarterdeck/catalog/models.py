"""Catalog tables: teams, people, systems, services, and the rows that link them.

Relations declared in descriptors (owner, system, dependencies, members, contacts) are stored as
references (slugs, handles or e-mails), the way Backstage keeps entity refs: a descriptor may name
something that another file defines later, or not at all, and the import order must not matter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from quarterdeck.db import Base, UTCDateTime

UI_SOURCE = "ui"


class SourcedMixin:
    """Where an entity came from, and the last import problem with it.

    `source` is "ui" for entities made in the portal, else the key of a catalog source. A UI edit
    of an imported entity moves it to "ui" and remembers the old source in `detached_from`.
    """

    source: Mapped[str] = mapped_column(String(500), index=True, default=UI_SOURCE)
    source_file: Mapped[str | None] = mapped_column(String(1000))
    source_line: Mapped[int | None] = mapped_column(Integer)
    descriptor: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    import_errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    detached_from: Mapped[str | None] = mapped_column(String(500))
    annotations: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    links: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Team(SourcedMixin, Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(100), default="team")
    email: Mapped[str | None] = mapped_column(String(320))
    chat_channel: Mapped[str | None] = mapped_column(String(200))
    parent_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    child_refs: Mapped[list[str]] = mapped_column(JSON, default=list)


class Person(SourcedMixin, Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(300))
    chat_handle: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(300))
    avatar_url: Mapped[str | None] = mapped_column(String(1000))


class Membership(Base):
    """A person in a team. Declared by the team's descriptor or by the person's, never both."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint("(team_id IS NULL) != (person_id IS NULL)", name="declared_by_one"),
        Index("ix_memberships_team_ref", "team_ref"),
        Index("ix_memberships_person_ref", "person_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    team_ref: Mapped[str] = mapped_column(String(200))
    person_ref: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(100), default="member")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)


class System(SourcedMixin, Base):
    __tablename__ = "systems"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="system")
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    domain_ref: Mapped[str | None] = mapped_column(String(200), index=True)


class Service(SourcedMixin, Base):
    """A component, API or resource: anything with an owner that someone may need to reach."""

    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("kind", "slug"),
        CheckConstraint("tier IS NULL OR (tier >= 1 AND tier <= 4)", name="tier_range"),
        Index("ix_services_slug", "slug", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="component")
    slug: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(100), default="service", index=True)
    lifecycle: Mapped[str] = mapped_column(String(100), default="production", index=True)
    tier: Mapped[int | None] = mapped_column(Integer, index=True)
    system_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    owner_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    image_repository: Mapped[str | None] = mapped_column(String(500))
    definition: Mapped[str | None] = mapped_column(Text)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    tags: Mapped[list[ServiceTag]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="select", order_by="ServiceTag.tag"
    )
    contacts: Mapped[list[ServiceContact]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="select", order_by="ServiceContact.id"
    )
    dependencies: Mapped[list[ServiceDependency]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="select", order_by="ServiceDependency.id"
    )


class ServiceTag(Base):
    __tablename__ = "service_tags"

    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class ServiceContact(Base):
    __tablename__ = "service_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(100))
    person_ref: Mapped[str] = mapped_column(String(320), index=True)


class ServiceDependency(Base):
    """An edge from a service to another catalog service; `relation` says which kind of edge."""

    __tablename__ = "service_dependencies"
    __table_args__ = (Index("ix_service_dependencies_target", "target_slug", "target_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    relation: Mapped[str] = mapped_column(String(30), default="depends_on")
    target_kind: Mapped[str] = mapped_column(String(20), default="component")
    target_slug: Mapped[str] = mapped_column(String(200))


DEFAULT_SYNC_SECONDS = 300


class CatalogSource(Base):
    """A place descriptors are imported from: a file, a folder or a git repository.

    A git repository is synced again on its own every `sync_interval_seconds` by a job
    (source_sync.py): `next_sync_at` is the due time of the one periodic job that counts, and
    `file_state` what the last sync read, so the next one reads only what changed (incremental.py).
    `generation` goes up with every import applied, so a sync can tell another one came first.
    """

    __tablename__ = "catalog_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(500), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(String(1000))
    revision: Mapped[str | None] = mapped_column(String(100))
    last_imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    sync_interval_seconds: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_SYNC_SECONDS, server_default=str(DEFAULT_SYNC_SECONDS)
    )
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_sync_result: Mapped[str | None] = mapped_column(String(20))
    last_sync_error: Mapped[str | None] = mapped_column(Text)
    last_sync_files_read: Mapped[int | None] = mapped_column(Integer)
    file_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)


class SearchDocument(Base):
    """One searchable row per catalog entity; FTS5 (SQLite) or a tsvector (PostgreSQL) indexes it."""

    __tablename__ = "search_documents"
    __table_args__ = (UniqueConstraint("entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int] = mapped_column(Integer)
    slug: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(String(500))


class ServiceView(Base):
    """A service as the API answers it, materialized by the write that changed anything it shows
    (readmodel.py): the JSON body with its ETag, and the summary that lists and filters return."""

    __tablename__ = "service_views"
    __table_args__ = (Index("ix_service_views_slug_rank", "slug", "rank"),)

    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    kind: Mapped[str] = mapped_column(String(20))
    slug: Mapped[str] = mapped_column(String(200))
    rank: Mapped[int] = mapped_column(Integer)
    etag: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)


class CatalogState(Base):
    """One row: a counter bumped by every catalog write, so caches in any replica know when to drop."""

    __tablename__ = "catalog_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
