"""Pipeline tables: a pipeline where it is kept (a service's or team's override, an organisation
default, a product default once run) and every version of its body. Written by
deploys/pipelines/service.py only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from quarterdeck.db import Base, UTCDateTime


class PipelineRow(Base):
    """One pipeline: `key` names its place (`service:checkout-api@production`, `team:shop`,
    `default:careful`, `product:direct`); `current_version` moves by guarded updates only, so of two
    racing applies exactly one makes the next version."""

    __tablename__ = "pipelines"
    __table_args__ = (Index("ix_pipelines_scope", "scope_kind", "scope_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(420), unique=True)
    scope_kind: Mapped[str] = mapped_column(String(20))
    """service, team, default or product."""
    scope_ref: Mapped[str] = mapped_column(String(200))
    """The service's or team's slug, or the default's name."""
    environment: Mapped[str | None] = mapped_column(String(100))
    """The environment it overrides in; None for every environment."""
    name: Mapped[str] = mapped_column(String(100))
    current_version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PipelineVersion(Base):
    """One version of a pipeline's body as applied (canonical JSON, every default filled in) and its
    SHA-256: what a deploy that ran it points at. Never changed once written."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
