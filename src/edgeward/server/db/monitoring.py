"""Tables of monitoring (migration 0008): telemetry points and roll-ups, the detectors'
state, endpoints seen, central logs, rules, web hooks, remediation actions, hardening
findings and ingest receipts. The logs' full-text index (an FTS5 table on SQLite, a GIN
index on PostgreSQL) is made by the migration only: it is not a model."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgeward.server.db.models import Base, EventId

FULLTEXT_TABLES = "log_lines_fts"  # prefix of SQLite's FTS5 table and its shadow tables
FULLTEXT_INDEX = "ix_log_lines_fulltext"  # PostgreSQL's GIN index on to_tsvector(text)



def _gateway_fk() -> ForeignKey:  # a fresh key for each column
    return ForeignKey("gateways.id", ondelete="CASCADE")


def _tenant_fk() -> ForeignKey:
    return ForeignKey("tenants.id", ondelete="CASCADE")


def _when() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True))


def _maybe() -> Mapped[dt.datetime | None]:
    return mapped_column(DateTime(timezone=True))


class IngestReceipt(Base):
    """A batch a gateway sent and the server stored: sent again, it is not stored twice."""

    __tablename__ = "ingest_receipts"
    __table_args__ = (Index("ix_ingest_receipts_received", "received_at"),)

    gateway_id: Mapped[int] = mapped_column(_gateway_fk(), primary_key=True)
    batch: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = _when()


class MetricPoint(Base):
    """One metric of one report (``app`` "" for the gateway as a whole)."""

    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_gateway_metric_at", "gateway_id", "metric", "at"),
                      Index("ix_metric_points_at", "at"))

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(_gateway_fk())
    metric: Mapped[str] = mapped_column(String(32))
    app: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = _when()
    value: Mapped[float] = mapped_column(Float)


class MetricRollup(Base):
    """Points older than the raw retention, summarised per ``resolution`` seconds."""

    __tablename__ = "metric_rollups"

    gateway_id: Mapped[int] = mapped_column(_gateway_fk(), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    app: Mapped[str] = mapped_column(String(64), primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    mean: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)


class GatewayMonitor(Base):
    """What monitoring knows of a gateway: its cohort, reports, quarantine, last audit."""

    __tablename__ = "gateway_monitor"
    __table_args__ = (Index("ix_gateway_monitor_cohort", "cohort"),)

    gateway_id: Mapped[int] = mapped_column(_gateway_fk(), primary_key=True)
    cohort: Mapped[str] = mapped_column(String(64))
    reports: Mapped[int] = mapped_column(BigInteger, default=0)
    first_report_at: Mapped[dt.datetime | None] = _maybe()
    last_report_at: Mapped[dt.datetime | None] = _maybe()
    boot_id: Mapped[str] = mapped_column(String(32), default="")  # of the latest report
    previous_boot_id: Mapped[str] = mapped_column(String(32), default="", server_default="")
    boot_changed_at: Mapped[dt.datetime | None] = _maybe()
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    quarantined_at: Mapped[dt.datetime | None] = _maybe()
    audit_at: Mapped[dt.datetime | None] = _maybe()


class DetectorState(Base):
    """One detector's state for one gateway (a baseline, a drift test, a rule's clock)."""

    __tablename__ = "detector_state"
    __table_args__ = (Index("ix_detector_state_key_open", "key", "anomalous", "opened_at"),)

    gateway_id: Mapped[int] = mapped_column(_gateway_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    state: Mapped[dict[str, object]] = mapped_column(JSON)
    anomalous: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[dt.datetime | None] = _maybe()
    updated_at: Mapped[dt.datetime] = _when()


class Endpoint(Base):
    """A listening port (``listen``) or remote host (``remote``) a gateway was seen with."""

    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_kind_value", "kind", "value"),)

    gateway_id: Mapped[int] = mapped_column(_gateway_fk(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(160), primary_key=True)
    app: Mapped[str] = mapped_column(String(64))
    process: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[dt.datetime] = _when()
    last_seen: Mapped[dt.datetime] = _when()


class LogLine(Base):
    """A line of an app's or the agent's log, as the gateway shipped it."""

    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_gateway_at", "gateway_id", "at"),
                      Index("ix_log_lines_tenant_at", "tenant_id", "at"))

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(_tenant_fk())
    gateway_id: Mapped[int] = mapped_column(_gateway_fk())
    app: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # "app", "agent"
    level: Mapped[str] = mapped_column(String(8))
    at: Mapped[dt.datetime] = _when()
    text: Mapped[str] = mapped_column(Text)


class AlertRule(Base):
    """An operator's rule: ``metric`` (of ``app``; "" the gateway, "*" any app) ``op``
    ``threshold`` for ``duration`` seconds."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(_tenant_fk())
    name: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(32))
    app: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    duration: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = _when()


class AlertHook(Base):
    """Where a tenant's alerts are posted, and the key they are signed with (encrypted)."""

    __tablename__ = "alert_hooks"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(_tenant_fk())
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = _when()
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    last_alert_id: Mapped[int] = mapped_column(Integer, default=0)  # delivered up to here


class GatewayAction(Base):
    """A remediation an operator ordered: stop an app, cut its network, quarantine."""

    __tablename__ = "gateway_actions"
    __table_args__ = (Index("ix_gateway_actions_gateway_status", "gateway_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(_tenant_fk())
    gateway_id: Mapped[int] = mapped_column(_gateway_fk())
    action: Mapped[str] = mapped_column(String(16))
    app: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12))  # pending, delivered, done, failed
    result: Mapped[str] = mapped_column(String(300), default="")
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[dt.datetime] = _when()
    delivered_at: Mapped[dt.datetime | None] = _maybe()
    done_at: Mapped[dt.datetime | None] = _maybe()


class AuditFinding(Base):
    """A finding of a gateway's hardening audit, as long as its audits keep finding it."""

    __tablename__ = "audit_findings"
    __table_args__ = (UniqueConstraint("gateway_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(_tenant_fk())
    gateway_id: Mapped[int] = mapped_column(_gateway_fk())
    fingerprint: Mapped[str] = mapped_column(String(32))
    check: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text)
    advice: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[dt.datetime] = _when()
    last_seen: Mapped[dt.datetime] = _when()
