"""Monitoring: telemetry (points and their roll-ups), the detectors' state, the endpoints
each gateway was seen with, central logs (searchable: SQLite FTS5, PostgreSQL full text),
operators' rules and web hooks, remediation actions, hardening-audit findings, receipts
that make ingest idempotent, and the alert's life (severity, status, verdict, evidence).

New tables, and columns added to ``alerts`` (a plain ``ALTER TABLE ... ADD COLUMN``, also
on SQLite); ``gateways`` is not altered (on SQLite that would cascade-delete, see 0006).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _gateway(primary: bool = False) -> sa.Column[int]:
    return sa.Column("gateway_id", sa.Integer, sa.ForeignKey("gateways.id", ondelete="CASCADE"),
                     nullable=False, primary_key=primary)


def _tenant(nullable: bool = True) -> sa.Column[int]:
    return sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                     nullable=nullable)


def _alert_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("severity", sa.String(8), nullable=False, server_default="medium"),
        sa.Column("status", sa.String(12), nullable=False, server_default="open"),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("app", sa.String(64), nullable=False, server_default=""),
        sa.Column("source", sa.String(16), nullable=False, server_default=""),
        sa.Column("evidence", sa.JSON, nullable=True),
        sa.Column("acked_by", sa.String(128), nullable=True),
        _when("acked_at", nullable=True),
        _when("updated_at", nullable=True),
    ]


def upgrade() -> None:
    for column in _alert_columns():
        op.add_column("alerts", column)
    op.create_index("ix_alerts_tenant_status", "alerts", ["tenant_id", "status"])
    op.create_table(
        "ingest_receipts",
        _gateway(primary=True),
        sa.Column("batch", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        _when("received_at"),
    )
    op.create_index("ix_ingest_receipts_received", "ingest_receipts", ["received_at"])
    op.create_table(
        "metric_points",
        sa.Column("id", BIG_ID, primary_key=True),
        _gateway(),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("app", sa.String(64), nullable=False),
        _when("at"),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_metric_points_gateway_metric_at", "metric_points",
                    ["gateway_id", "metric", "at"])
    op.create_index("ix_metric_points_at", "metric_points", ["at"])
    op.create_table(
        "metric_rollups",
        _gateway(primary=True),
        sa.Column("metric", sa.String(32), primary_key=True),
        sa.Column("app", sa.String(64), primary_key=True),
        sa.Column("resolution", sa.Integer, primary_key=True),
        sa.Column("start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("mean", sa.Float, nullable=False),
        sa.Column("low", sa.Float, nullable=False),
        sa.Column("high", sa.Float, nullable=False),
    )
    op.create_table(
        "gateway_monitor",
        _gateway(primary=True),
        sa.Column("cohort", sa.String(64), nullable=False),
        sa.Column("reports", sa.BigInteger, nullable=False),
        _when("first_report_at", nullable=True),
        _when("last_report_at", nullable=True),
        sa.Column("boot_id", sa.String(32), nullable=False),
        sa.Column("previous_boot_id", sa.String(32), nullable=False, server_default=""),
        _when("boot_changed_at", nullable=True),
        sa.Column("quarantined", sa.Boolean, nullable=False),
        _when("quarantined_at", nullable=True),
        sa.Column("audit_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_gateway_monitor_cohort", "gateway_monitor", ["cohort"])
    op.create_table(
        "detector_state",
        _gateway(primary=True),
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("anomalous", sa.Boolean, nullable=False),
        _when("opened_at", nullable=True),
        _when("updated_at"),
    )
    op.create_index("ix_detector_state_key_open", "detector_state",
                    ["key", "anomalous", "opened_at"])
    op.create_table(
        "endpoints",
        _gateway(primary=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(160), primary_key=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("process", sa.String(64), nullable=False),
        _when("first_seen"),
        _when("last_seen"),
    )
    op.create_index("ix_endpoints_kind_value", "endpoints", ["kind", "value"])
    op.create_table(
        "log_lines",
        sa.Column("id", BIG_ID, primary_key=True),
        _tenant(),
        _gateway(),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        _when("at"),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_log_lines_gateway_at", "log_lines", ["gateway_id", "at"])
    op.create_index("ix_log_lines_tenant_at", "log_lines", ["tenant_id", "at"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE log_lines_fts USING fts5("
                   "text, content='log_lines', content_rowid='id')")
        op.execute("CREATE TRIGGER log_lines_ai AFTER INSERT ON log_lines BEGIN "
                   "INSERT INTO log_lines_fts(rowid, text) VALUES (new.id, new.text); END")
        op.execute("CREATE TRIGGER log_lines_ad AFTER DELETE ON log_lines BEGIN "
                   "INSERT INTO log_lines_fts(log_lines_fts, rowid, text) "
                   "VALUES ('delete', old.id, old.text); END")
    else:
        op.execute("CREATE INDEX ix_log_lines_fulltext ON log_lines "
                   "USING gin (to_tsvector('simple', text))")
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        _tenant(nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("op", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("duration", sa.Integer, nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_table(
        "alert_hooks",
        sa.Column("id", sa.Integer, primary_key=True),
        _tenant(),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _when("created_at"),
        sa.Column("delivered", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=False),
        sa.Column("last_alert_id", sa.Integer, nullable=False),
        sa.UniqueConstraint("tenant_id"),
    )
    op.create_table(
        "gateway_actions",
        sa.Column("id", sa.Integer, primary_key=True),
        _tenant(),
        _gateway(),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("result", sa.String(300), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        _when("requested_at"),
        _when("delivered_at", nullable=True),
        _when("done_at", nullable=True),
    )
    op.create_index("ix_gateway_actions_gateway_status", "gateway_actions",
                    ["gateway_id", "status"])
    op.create_table(
        "audit_findings",
        sa.Column("id", sa.Integer, primary_key=True),
        _tenant(),
        _gateway(),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("check", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("advice", sa.Text, nullable=False),
        _when("first_seen"),
        _when("last_seen"),
        sa.UniqueConstraint("gateway_id", "fingerprint"),
    )


def downgrade() -> None:
    for name in ("audit_findings", "gateway_actions", "alert_hooks", "alert_rules"):
        op.drop_table(name)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS log_lines_ad")
        op.execute("DROP TRIGGER IF EXISTS log_lines_ai")
        op.execute("DROP TABLE IF EXISTS log_lines_fts")
    for name in ("log_lines", "endpoints", "detector_state", "gateway_monitor",
                 "metric_rollups", "metric_points", "ingest_receipts"):
        op.drop_table(name)
    op.drop_index("ix_alerts_tenant_status", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for column in _alert_columns():
            batch.drop_column(column.name)
