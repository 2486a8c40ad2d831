"""Secrets at rest: the master key's check value, envelope keys, tenants' secrets,
escrowed recovery keys and per-device credentials (values only encrypted).

New tables only: on SQLite, altering ``gateways`` (batch mode copies it) would delete by
cascade the rows of every table that references it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant(nullable: bool) -> sa.Column[int]:
    return sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                     nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "key_check",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("check_value", sa.LargeBinary, nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "envelope_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False, unique=True),
        _tenant(nullable=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "tenant_secrets",
        sa.Column("id", sa.Integer, primary_key=True),
        _tenant(nullable=False),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("group_id", sa.Integer,
                  sa.ForeignKey("gateway_groups.id", ondelete="CASCADE"), nullable=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(128), nullable=False),
        _when("revoked_at", nullable=True),
        sa.UniqueConstraint("tenant_id", "app", "scope", "name"),
    )
    op.create_index("ix_tenant_secrets_group_id", "tenant_secrets", ["group_id"])
    op.create_table(
        "recovery_keys",
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        _when("escrowed_at"),
    )
    op.create_table(
        "device_credentials",
        sa.Column("id", sa.Integer, primary_key=True),
        _tenant(nullable=True),
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        _when("reported_at"),
        sa.UniqueConstraint("gateway_id", "app", "name"),
    )


def downgrade() -> None:
    op.drop_table("device_credentials")
    op.drop_table("recovery_keys")
    op.drop_index("ix_tenant_secrets_group_id", "tenant_secrets")
    for table in ("tenant_secrets", "envelope_keys", "key_check"):
        op.drop_table(table)
