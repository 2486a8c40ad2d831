"""Telemetry from gateways: stored once, then judged.

A batch carries a gateway's reports (one per interval; several after an outage, from
its spool). Its id is kept with the gateway (``ingest_receipts``): a batch sent again,
because the answer to the first try was lost, stores nothing. Each report's metrics
become points (the gateway's and each app's), its listening ports and remote hosts
update what the gateway was seen with, and the detectors (:mod:`.detect`) judge it, in
the same transaction: a report is stored and judged, or neither.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import Gateway
from edgeward.server.db.monitoring import Endpoint, GatewayMonitor, IngestReceipt, MetricPoint
from edgeward.server.detection import clones, metrics
from edgeward.server.services import alerts, detect
from edgeward.server.services.cohorts import Cohorts, cohort_of
from edgeward.server.services.intake import occurred
from edgeward.server.services.registry import aware

FRESH = dt.timedelta(minutes=10)  # after a boot or a new release: learnt, not alerted


@dataclass(frozen=True)
class Listener:
    proto: str
    address: str
    port: int
    process: str = ""
    app: str = ""

    @property
    def value(self) -> str:
        return f"{self.proto}/{self.port}"


@dataclass(frozen=True)
class Remote:
    host: str
    port: int
    process: str = ""
    app: str = ""

    @property
    def value(self) -> str:
        return self.host


@dataclass(frozen=True)
class Report:
    at: float
    interval: float
    boot_id: str
    metrics: dict[str, float]
    apps: dict[str, dict[str, float]] = field(default_factory=dict)
    listening: tuple[Listener, ...] = ()
    remotes: tuple[Remote, ...] = ()

    def flat(self) -> dict[str, float]:
        """Every metric by key: the gateway's, and each app's as ``app/<name>/<metric>``."""
        out = dict(self.metrics)
        for app, values in self.apps.items():
            for name, value in values.items():
                out[metrics.app_key(app, name)] = value
        return out


def monitor_of(session: Session, gateway: Gateway, cohort: str) -> GatewayMonitor:
    row = session.get(GatewayMonitor, gateway.id, with_for_update=True)
    if row is None:
        row = GatewayMonitor(gateway_id=gateway.id, cohort=cohort, reports=0, boot_id="",
                             quarantined=False)
        session.add(row)
    return row


def received(session: Session, gateway: Gateway, batch: str, kind: str,
             now: dt.datetime) -> bool:
    """Record a batch's receipt; False when it was received before (store nothing)."""
    known = session.execute(select(IngestReceipt.batch).where(
        IngestReceipt.gateway_id == gateway.id, IngestReceipt.batch == batch)).first()
    if known is not None:
        return False
    session.add(IngestReceipt(gateway_id=gateway.id, batch=batch, kind=kind, received_at=now))
    session.flush()  # a concurrent twin fails here (primary key), its transaction with it
    return True


def ingest(session: Session, cohorts: Cohorts, gateway: Gateway, batch: str,
           reports: Sequence[Report], now: dt.datetime) -> dict[str, object]:
    if not received(session, gateway, batch, "telemetry", now):
        return {"stored": 0, "duplicate": True}
    ordered = sorted(reports, key=lambda r: r.at)
    apps = {name for r in ordered for name in r.apps}
    monitor = monitor_of(session, gateway, cohort_of(gateway.model, apps))
    alerts_raised = 0
    if apps or not monitor.cohort:
        monitor.cohort = cohort_of(gateway.model, apps)
    points = []
    for report in ordered:
        at = occurred(report.at, now)
        if report.boot_id and report.boot_id != monitor.boot_id:
            current, previous, cloned = clones.step(monitor.boot_id,
                                                    monitor.previous_boot_id, report.boot_id)
            if cloned:  # an older boot came back: two devices, one identity, and the
                monitor.boot_changed_at = None  # "boot" before was the second appearing
                alerts_raised += _cloned(session, gateway, at)
            elif monitor.boot_id:  # not the first report ever: a boot or a new release
                monitor.boot_changed_at = at
            monitor.boot_id, monitor.previous_boot_id = current, previous
        fresh = monitor.boot_changed_at is not None and \
            at - aware(monitor.boot_changed_at) < FRESH
        values = report.flat()
        points += [{"gateway_id": gateway.id, "metric": metrics.split(key)[1][:32],
                    "app": metrics.split(key)[0], "at": at, "value": float(value)}
                   for key, value in values.items()]
        learning = monitor.reports < 20
        seen = _endpoints(session, gateway, report, at)
        alerts_raised += detect.judge(session, cohorts, gateway, monitor, values, at, fresh,
                                      seen, learning)
        monitor.reports += 1
        monitor.first_report_at = monitor.first_report_at or at
        monitor.last_report_at = at
    if points:
        session.execute(insert(MetricPoint), points)
    return {"stored": len(ordered), "duplicate": False, "alerts": alerts_raised}


def _cloned(session: Session, gateway: Gateway, at: dt.datetime) -> int:
    """The registry's alert for a cloned identity, from the telemetry's boot ids."""
    return alerts.raise_alert(
        session, gateway, "cloned-identity",
        f"certificate of {gateway.serial} is in use by two running devices (their "
        "reports alternate between two boots)", at, severity="high", source="identity",
        evidence={"seen_in": "telemetry"}) is not None


def _endpoints(session: Session, gateway: Gateway, report: Report, at: dt.datetime
               ) -> dict[str, list[tuple[str, str, str]]]:
    return remember(session, gateway,
                    [("listen", x.value, x.app, x.process) for x in report.listening] +
                    [("remote", x.value, x.app, x.process) for x in report.remotes], at)


def remember(session: Session, gateway: Gateway, current: list[tuple[str, str, str, str]],
             at: dt.datetime) -> dict[str, list[tuple[str, str, str]]]:
    """Update what the gateway was seen with (kind, value, app, process); return the
    values new to it, per kind, with the owning app and process."""
    known = {(e.kind, e.value): e for e in session.execute(
        select(Endpoint).where(Endpoint.gateway_id == gateway.id)).scalars()}
    new: dict[str, list[tuple[str, str, str]]] = {"listen": [], "remote": []}
    for kind, value, app, process in current:
        row = known.get((kind, value[:160]))
        if row is not None:
            row.last_seen = max(aware(row.last_seen), at)
            continue
        row = Endpoint(gateway_id=gateway.id, kind=kind, value=value[:160], app=app[:64],
                       process=process[:64], first_seen=at, last_seen=at)
        session.add(row)
        known[(kind, row.value)] = row
        new[kind].append((row.value, row.app, row.process))
    return new
