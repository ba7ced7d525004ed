"""deploys: environments, releases, deploy records, live versions; observability: metric panels

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quarterdeck.db import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("production", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("slug", name=op.f("uq_environments_slug")),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_slug", sa.String(200), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("image", sa.String(500), nullable=True),
        sa.Column("digest", sa.String(100), nullable=True),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("service_slug", "version", name=op.f("uq_releases_service_slug_version")),
    )
    op.create_index(op.f("ix_releases_service_slug"), "releases", ["service_slug"])
    op.create_table(
        "deploys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("service_slug", sa.String(200), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("deployed_by", sa.String(320), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_deploys_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name=op.f("fk_deploys_release_id_releases"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploys")),
        sa.UniqueConstraint("external_id", name=op.f("uq_deploys_external_id")),
    )
    op.create_index(op.f("ix_deploys_environment_id"), "deploys", ["environment_id"])
    op.create_index(op.f("ix_deploys_release_id"), "deploys", ["release_id"])
    op.create_index(op.f("ix_deploys_started_at"), "deploys", ["started_at"])
    op.create_index("ix_deploys_service_started", "deploys", ["service_slug", "started_at"])
    op.create_index("ix_deploys_service_env_status", "deploys", ["service_slug", "environment_id", "status"])
    op.create_table(
        "live_versions",
        sa.Column("service_slug", sa.String(200), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("deploy_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deploy_id"], ["deploys.id"], name=op.f("fk_live_versions_deploy_id_deploys"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_live_versions_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_slug", "environment_id", name=op.f("pk_live_versions")),
    )
    op.create_table(
        "metric_panels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_slug", sa.String(200), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("unit", sa.String(50), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_panels")),
        sa.UniqueConstraint("service_slug", "key", name=op.f("uq_metric_panels_service_slug_key")),
    )
    op.create_index(op.f("ix_metric_panels_service_slug"), "metric_panels", ["service_slug"])


def downgrade() -> None:
    for table in ("metric_panels", "live_versions", "deploys", "releases", "environments"):
        op.drop_table(table)
