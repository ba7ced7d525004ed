"""Deploy tables: environments, releases, deploy records and their status changes, the live version per
service and environment.

Services are referred to by slug, as the catalog names them: this domain never reads catalog tables.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from quarterdeck.db import Base, UTCDateTime


class DeploySource(StrEnum):
    CI = "ci"
    PORTAL = "portal"
    CLI = "cli"


class Environment(Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    production: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Release(Base):
    """A version of a service that can be deployed: its image, commit and notes."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("service_slug", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_slug: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(128))
    image: Mapped[str | None] = mapped_column(String(500))
    digest: Mapped[str | None] = mapped_column(String(100))
    commit: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Deploy(Base):
    """One rollout of a release to an environment. `external_id` is the reporter's own id, which makes
    a retried report land on the same row."""

    __tablename__ = "deploys"
    __table_args__ = (
        Index("ix_deploys_service_started", "service_slug", "started_at"),
        Index("ix_deploys_service_env_status", "service_slug", "environment_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    service_slug: Mapped[str] = mapped_column(String(200))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="RESTRICT"), index=True
    )
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))
    deployed_by: Mapped[str] = mapped_column(String(320))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notes: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Counts the row's changes: every status change adds one (transitions.py)."""
    service_tier: Mapped[int | None] = mapped_column(Integer)
    """The service's tier when the deploy was first reported; None when it had none (or the deploy was
    recorded before tiers were kept)."""
    approval_id: Mapped[int | None] = mapped_column(Integer)
    """The approved change request (access's) that vouched for this deploy, when one did."""


class DeployEvent(Base):
    """One status change of one deploy: from (None when it was first recorded), to, when, who, why.
    Written in the transaction of the change itself, by transitions.py only."""

    __tablename__ = "deploy_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text, default="")


class LiveVersion(Base):
    """What runs now: the newest succeeded deploy per service and environment, kept up to date by
    every report so the environment matrix is one indexed read."""

    __tablename__ = "live_versions"

    service_slug: Mapped[str] = mapped_column(String(200), primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True
    )
    deploy_id: Mapped[int] = mapped_column(ForeignKey("deploys.id", ondelete="CASCADE"))
