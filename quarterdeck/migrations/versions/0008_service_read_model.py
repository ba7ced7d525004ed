"""catalog: the materialized read model of services (their API answers and list summaries); the
slug index also holds the kind, so a page of the service list continues from a (slug, kind) key

Expand only. The table starts empty: `quarterdeck db upgrade` (and `serve`) then materialize every
service, which needs the catalog's code, not SQL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_views",
        sa.Column("service_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_views_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_service_views")),
    )
    op.create_index("ix_service_views_slug_rank", "service_views", ["slug", "rank"], unique=False)
    with op.batch_alter_table("services") as batch_op:
        batch_op.drop_index("ix_services_slug")
        batch_op.create_index("ix_services_slug", ["slug", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("services") as batch_op:
        batch_op.drop_index("ix_services_slug")
        batch_op.create_index("ix_services_slug", ["slug"], unique=False)
    op.drop_index("ix_service_views_slug_rank", table_name="service_views")
    op.drop_table("service_views")
