"""deploys: a version counter and deploy_events (each status change); access: approvals become change
requests of any domain (expand: resource_type, resource_key and details added; the old columns stay)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quarterdeck.db import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

approvals = sa.table(
    "approvals",
    sa.column("id", sa.Integer()),
    sa.column("service_slug", sa.String()),
    sa.column("version", sa.String()),
    sa.column("resource_key", sa.String()),
    sa.column("details", sa.JSON()),
)


def upgrade() -> None:
    op.add_column("deploys", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "deploy_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deploy_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deploy_id"], ["deploys.id"], name=op.f("fk_deploy_events_deploy_id_deploys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_events")),
    )
    op.create_index(op.f("ix_deploy_events_deploy_id"), "deploy_events", ["deploy_id"])
    # Deploys recorded before events were kept start their timeline with their status as stored.
    op.execute(
        "INSERT INTO deploy_events (deploy_id, from_status, to_status, at, actor, reason) "
        "SELECT id, NULL, status, reported_at, deployed_by, 'recorded before status changes were kept' "
        "FROM deploys"
    )

    op.add_column(
        "approvals", sa.Column("resource_type", sa.String(50), server_default="service", nullable=False)
    )
    op.add_column("approvals", sa.Column("resource_key", sa.String(200), nullable=True))
    op.add_column("approvals", sa.Column("details", sa.JSON(), nullable=True))
    _fill_change_requests()
    with op.batch_alter_table("approvals") as batch:
        batch.alter_column("resource_key", existing_type=sa.String(200), nullable=False)
        batch.alter_column("details", existing_type=sa.JSON(), nullable=False)
    op.create_index("ix_approvals_resource", "approvals", ["resource_type", "resource_key"])


def _fill_change_requests() -> None:
    """Every request so far was a deploy of a service: its key is the service, its details the version."""
    connection = op.get_bind()
    op.execute(approvals.update().values(resource_key=approvals.c.service_slug))
    op.execute(approvals.update().where(approvals.c.version.is_(None)).values(details={}))
    versioned = connection.execute(
        sa.select(approvals.c.id, approvals.c.version).where(approvals.c.version.is_not(None))
    ).all()
    for request_id, version in versioned:
        connection.execute(
            approvals.update().where(approvals.c.id == request_id).values(details={"version": version})
        )


def downgrade() -> None:
    op.drop_index("ix_approvals_resource", table_name="approvals")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("details")
        batch.drop_column("resource_key")
        batch.drop_column("resource_type")
    op.drop_index(op.f("ix_deploy_events_deploy_id"), table_name="deploy_events")
    op.drop_table("deploy_events")
    with op.batch_alter_table("deploys") as batch:
        batch.drop_column("version")
