"""Attestation nonces.

Revision ID: 0002
Revises: 0001
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
        "nonces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_nonces_gateway_id", "nonces", ["gateway_id"])


def downgrade() -> None:
    op.drop_table("nonces")
