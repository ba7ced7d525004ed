"""deploys: the service's tier when a deploy was reported, and the approval that vouched for it

Expand only: two nullable columns. Deploys recorded before have no tier on record, so they are not
judged by the two-person rule (a tier-1 production deploy without an approval is flagged from now on).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deploys", sa.Column("service_tier", sa.Integer(), nullable=True))
    op.add_column("deploys", sa.Column("approval_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deploys") as batch:
        batch.drop_column("approval_id")
        batch.drop_column("service_tier")
