"""Observability tables: the extra graph panels teams add to their services."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from quarterdeck.db import Base, UTCDateTime


class MetricPanel(Base):
    """An extra graph a team adds to its service: a PromQL template with the service's labels."""

    __tablename__ = "metric_panels"
    __table_args__ = (UniqueConstraint("service_slug", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_slug: Mapped[str] = mapped_column(String(200), index=True)
    key: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(50), default="")
    query: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
