"""Boot ids on gateways (to tell a reboot from a clone) and alerts.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("boot_id", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("previous_boot_id", sa.String(32), nullable=False,
                                   server_default=""))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alerts_tenant_at", "alerts", ["tenant_id", "at"])


def downgrade() -> None:
    op.drop_table("alerts")
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("previous_boot_id")
        batch.drop_column("boot_id")
