"""Home tables: the entities each user starred.

Entities are named as the catalog names them (a kind and a key), never by the catalog's row ids: a
star outlives a re-import that gives its entity a new row, and this domain reads no catalog table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from quarterdeck.db import Base, UTCDateTime


class Star(Base):
    """One entity a user starred to see it on their home. `entity_kind` is service, team, person or
    system; `entity_slug` the catalog's key for it (a service's slug, or `kind:slug` for an API or a
    resource; a person's handle). The primary key makes a star unique per user and entity."""

    __tablename__ = "stars"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    entity_kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    entity_slug: Mapped[str] = mapped_column(String(220), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
