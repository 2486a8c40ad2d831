"""OS updates: gateway groups, published releases, rollouts, update progress.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
REFERENCING_GATEWAYS = ("nonces", "alerts")  # tables with a foreign key to gateways at 0003


def _when(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _target(prefix: str, nullable: bool = False) -> list[sa.Column[Any]]:
    return [sa.Column(f"{prefix}_target", sa.String(255), nullable=nullable),
            sa.Column(f"{prefix}_sha384", sa.String(96), nullable=nullable),
            sa.Column(f"{prefix}_length", sa.BigInteger, nullable=nullable)]


def upgrade() -> None:
    op.create_table(
        "gateway_groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("pinned_version", sa.String(64), nullable=True),
        sa.Column("window", sa.String(16), nullable=False),
        sa.Column("auto_update", sa.Boolean, nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    # SQLite adds a foreign-key column by copying the table (batch mode); dropping the
    # old gateways table (foreign keys on) deletes, by cascade, the rows that reference
    # it, so those (at revision 0003: nonces, alerts) are kept aside and put back.
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for table in REFERENCING_GATEWAYS:
            op.execute(f"CREATE TEMP TABLE kept_{table} AS SELECT * FROM {table}")  # noqa: S608
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column(
            "group_id", sa.Integer, sa.ForeignKey("gateway_groups.id", ondelete="SET NULL",
                                                  name="fk_gateways_group_id"),
            nullable=True))
    if sqlite:
        for table in REFERENCING_GATEWAYS:
            op.execute(f"INSERT INTO {table} SELECT * FROM kept_{table}")  # noqa: S608
            op.execute(f"DROP TABLE kept_{table}")
    op.create_index("ix_gateways_group_id", "gateways", ["group_id"])
    op.create_table(
        "os_releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("security_version", sa.Integer, nullable=False),
        *_target("kernel"), *_target("rootfs"), *_target("delta", nullable=True),
        sa.Column("delta_base_version", sa.String(64), nullable=True),
        sa.Column("delta_base_sha384", sa.String(96), nullable=True),
        _when("published_at"),
        sa.Column("seq", sa.Integer, nullable=False, unique=True),
        _when("yanked_at", nullable=True),
        sa.UniqueConstraint("model", "version"),
    )
    op.create_index("ix_os_releases_model_seq", "os_releases", ["model", "seq"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("stages", sa.JSON, nullable=False),
        sa.Column("error_threshold", sa.Integer, nullable=False),
        sa.Column("success_threshold", sa.Integer, nullable=False),
        sa.Column("min_stage_minutes", sa.Integer, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("current_stage", sa.Integer, nullable=False),
        _when("stage_started_at"),
        sa.Column("halted_reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _when("created_at"),
        _when("updated_at"),
    )
    op.create_index("ix_rollouts_model_version", "rollouts", ["model", "version"])
    op.create_table(
        "gateway_updates",
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id", ondelete="SET NULL"),
                  nullable=True),
        _when("updated_at"),
    )
    op.create_table(
        "update_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                  nullable=False),
        _when("at"),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id", ondelete="SET NULL"),
                  nullable=True),
    )
    op.create_index("ix_update_events_gateway_at", "update_events", ["gateway_id", "at"])
    op.create_index("ix_update_events_version_phase", "update_events", ["version", "phase"])


def downgrade() -> None:
    for table in ("update_events", "gateway_updates", "rollouts", "os_releases"):
        op.drop_table(table)
    op.drop_index("ix_gateways_group_id", "gateways")
    # on SQLite this copies the gateways table (see upgrade): run it with foreign keys off
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("group_id")
    op.drop_table("gateway_groups")
