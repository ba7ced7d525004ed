"""catalog: git sources sync on their own; what each sync found, and what it read (expand only:
columns added, each with a default or nullable, so a worker of the previous version keeps working)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quarterdeck.db import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("generation", sa.Integer(), {"server_default": "0", "nullable": False}),
    ("sync_enabled", sa.Boolean(), {"server_default": sa.true(), "nullable": False}),
    ("sync_interval_seconds", sa.Integer(), {"server_default": "300", "nullable": False}),
    ("next_sync_at", UTCDateTime(), {"nullable": True}),
    ("last_sync_started_at", UTCDateTime(), {"nullable": True}),
    ("last_sync_finished_at", UTCDateTime(), {"nullable": True}),
    ("last_sync_duration_ms", sa.Integer(), {"nullable": True}),
    ("last_sync_result", sa.String(20), {"nullable": True}),
    ("last_sync_error", sa.Text(), {"nullable": True}),
    ("last_sync_files_read", sa.Integer(), {"nullable": True}),
    ("file_state", sa.JSON(), {"nullable": True}),
)


def upgrade() -> None:
    for name, type_, options in COLUMNS:
        op.add_column("catalog_sources", sa.Column(name, type_, **options))


def downgrade() -> None:
    with op.batch_alter_table("catalog_sources") as batch:
        for name, _type, _options in reversed(COLUMNS):
            batch.drop_column(name)
