"""catalog: a service's stored answer lists its references that name nothing (`problems`)

Data only: the stored answers are emptied, so `quarterdeck db upgrade` (and `serve`) materialize
every service again with the new field, which needs the catalog's code, not SQL. An answer of the
previous version reads as having no problems until then; the previous version ignores the field.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM service_views")


def downgrade() -> None:
    """Nothing to undo: the previous version reads the new answers, ignoring `problems`."""
