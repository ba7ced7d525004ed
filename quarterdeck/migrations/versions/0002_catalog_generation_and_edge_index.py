"""catalog generation counter; dependency index led by the target slug

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_state")),
    )
    op.execute("INSERT INTO catalog_state (id, generation) VALUES (1, 0)")
    with op.batch_alter_table("service_dependencies") as batch_op:
        batch_op.drop_index("ix_service_dependencies_target")
        batch_op.create_index("ix_service_dependencies_target", ["target_slug", "target_kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("service_dependencies") as batch_op:
        batch_op.drop_index("ix_service_dependencies_target")
        batch_op.create_index("ix_service_dependencies_target", ["target_kind", "target_slug"], unique=False)
    op.drop_table("catalog_state")
