"""Apps at run time: security events (and each gateway's event intake), app status as
gateways report it, operators' confinement modes, and the profiles complain mode learnt.

New tables only: on SQLite, altering ``gateways`` (batch mode copies it) would delete by
cascade the rows of every table that references it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _owner() -> list[sa.Column[Any]]:
    return [sa.Column("tenant_id", sa.Integer,
                      sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
            sa.Column("gateway_id", sa.Integer,
                      sa.ForeignKey("gateways.id", ondelete="CASCADE"), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "security_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        *_owner(),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("what", sa.String(300), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        _when("occurred_at"),
        _when("received_at"),
    )
    op.create_index("ix_security_events_tenant_at", "security_events",
                    ["tenant_id", "occurred_at"])
    op.create_index("ix_security_events_tenant_kind_at", "security_events",
                    ["tenant_id", "kind", "occurred_at"])
    op.create_index("ix_security_events_gateway_at", "security_events",
                    ["gateway_id", "occurred_at"])
    op.create_table(
        "event_intake",
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("tokens", sa.Float, nullable=False),
        _when("refilled_at"),
        sa.Column("accepted", sa.BigInteger, nullable=False),
        sa.Column("dropped", sa.BigInteger, nullable=False),
        _when("last_drop_at", nullable=True),
    )
    op.create_table(
        "gateway_apps",
        sa.Column("id", sa.Integer, primary_key=True),
        *_owner(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("publisher", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("granted", sa.JSON, nullable=False),
        sa.Column("withheld", sa.JSON, nullable=False),
        sa.Column("restarts", sa.Integer, nullable=False),
        _when("since", nullable=True),
        _when("reported_at"),
        sa.UniqueConstraint("gateway_id", "name"),
    )
    op.create_table(
        "app_modes",
        sa.Column("id", sa.Integer, primary_key=True),
        *_owner(),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        _when("set_at"),
        sa.UniqueConstraint("gateway_id", "app"),
    )
    op.create_table(
        "app_profiles",
        sa.Column("id", sa.Integer, primary_key=True),
        *_owner(),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("interfaces", sa.JSON, nullable=False),
        sa.Column("egress", sa.JSON, nullable=False),
        sa.Column("denied", sa.JSON, nullable=False),
        _when("observed_from"),
        _when("observed_to"),
        _when("received_at"),
        sa.UniqueConstraint("gateway_id", "app"),
    )


def downgrade() -> None:
    for table in ("app_profiles", "app_modes", "gateway_apps", "event_intake"):
        op.drop_table(table)
    for index in ("ix_security_events_gateway_at", "ix_security_events_tenant_kind_at",
                  "ix_security_events_tenant_at"):
        op.drop_index(index, "security_events")
    op.drop_table("security_events")
