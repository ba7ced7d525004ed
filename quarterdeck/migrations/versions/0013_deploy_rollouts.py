"""deploys: rollouts (portal deploys run through their pipeline), their steps, step logs, events, and
the freeze windows of environments

Expand only: new tables, read and written by nothing older. The partial unique index
ux_rollouts_one_active keeps one active rollout per service and environment on both databases.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quarterdeck.db import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text("state IN ('running', 'waiting_approval', 'paused', 'rolling_back')")
STATES = (
    "state IN ('queued', 'running', 'waiting_approval', 'paused', 'rolling_back', 'succeeded', "
    "'rolled_back', 'aborted', 'failed')"
)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_slug", sa.String(200), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(100), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("release_version", sa.String(128), nullable=False),
        sa.Column("image", sa.String(500), nullable=True),
        sa.Column("deploy_id", sa.Integer(), nullable=True),
        sa.Column("baseline_version", sa.String(128), nullable=True),
        sa.Column("service_tier", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("prepared", sa.Boolean(), nullable=False),
        sa.Column("promote_requested", sa.Boolean(), nullable=False),
        sa.Column("finish_as", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("pipeline_version", sa.Integer(), nullable=False),
        sa.Column("pipeline_digest", sa.String(64), nullable=False),
        sa.Column("pipeline_name", sa.String(100), nullable=False),
        sa.Column("pipeline_body", sa.JSON(), nullable=False),
        sa.Column("on_failure", sa.String(20), nullable=False),
        sa.Column("bake_seconds", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.String(320), nullable=False),
        sa.Column("started_by_kind", sa.String(20), nullable=False),
        sa.Column("started_by_user_id", sa.Integer(), nullable=True),
        sa.Column("emergency_request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(STATES, name=op.f("ck_rollouts_state")),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_rollouts_environment_id_environments"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["releases.id"], name=op.f("fk_rollouts_release_id_releases"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["deploy_id"], ["deploys.id"], name=op.f("fk_rollouts_deploy_id_deploys"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(
        "ux_rollouts_one_active",
        "rollouts",
        ["service_slug", "environment_id"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_index("ix_rollouts_service_env_state", "rollouts", ["service_slug", "environment_id", "state"])
    op.create_index(op.f("ix_rollouts_deploy_id"), "rollouts", ["deploy_id"])
    op.create_table(
        "rollout_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("state_since", UTCDateTime(), nullable=True),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("waiting_seconds", sa.Float(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("log_lines", sa.Integer(), nullable=False),
        sa.Column("log_dropped", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_steps_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_steps")),
        sa.UniqueConstraint("rollout_id", "position", name=op.f("uq_rollout_steps_rollout_id_position")),
    )
    op.create_table(
        "rollout_step_logs",
        sa.Column("id", EventId, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_step_logs_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_step_logs")),
    )
    op.create_index("ix_rollout_step_logs_step", "rollout_step_logs", ["rollout_id", "position", "id"])
    op.create_table(
        "rollout_events",
        sa.Column("id", EventId, nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_events_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_events")),
    )
    op.create_index("ix_rollout_events_rollout", "rollout_events", ["rollout_id", "id"])
    op.create_table(
        "freeze_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("weekly", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_freeze_windows_environment_id_environments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freeze_windows")),
    )
    op.create_index(op.f("ix_freeze_windows_environment_id"), "freeze_windows", ["environment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_freeze_windows_environment_id"), table_name="freeze_windows")
    op.drop_table("freeze_windows")
    op.drop_index("ix_rollout_events_rollout", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_index("ix_rollout_step_logs_step", table_name="rollout_step_logs")
    op.drop_table("rollout_step_logs")
    op.drop_table("rollout_steps")
    op.drop_index(op.f("ix_rollouts_deploy_id"), table_name="rollouts")
    op.drop_index("ix_rollouts_service_env_state", table_name="rollouts")
    op.drop_index("ux_rollouts_one_active", table_name="rollouts")
    op.drop_table("rollouts")
