"""Fleet health at a glance, for the fleet page: which gateways report, which went
silent, their CPU now, their open alerts and whether they are quarantined; counts on
top. A few grouped queries, whatever the fleet's size."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import Alert, Gateway
from edgeward.server.db.monitoring import GatewayMonitor, MetricPoint
from edgeward.server.services.registry import aware, iso

SILENT = dt.timedelta(minutes=5)  # ten 30-s reports missed
SEVERITIES = ("high", "medium", "low")


def summary(session: Session, gateways: list[Gateway], now: dt.datetime) -> dict[str, Any]:
    ids = [g.id for g in gateways]
    if not ids:
        return {"rows": {}, "cards": [], "alerts": dict.fromkeys(SEVERITIES, 0)}
    monitors = {m.gateway_id: m for m in session.execute(
        select(GatewayMonitor).where(GatewayMonitor.gateway_id.in_(ids))).scalars()}
    open_alerts: dict[int, dict[str, int]] = {}
    for gateway_id, severity, count in session.execute(
            select(Alert.gateway_id, Alert.severity, func.count()).where(
                Alert.gateway_id.in_(ids), Alert.status == "open")
            .group_by(Alert.gateway_id, Alert.severity)).tuples():
        if gateway_id is not None:
            open_alerts.setdefault(gateway_id, {})[severity] = int(count)
    latest = select(MetricPoint.gateway_id, func.max(MetricPoint.at).label("at")).where(
        MetricPoint.gateway_id.in_(ids), MetricPoint.metric == "cpu_percent",
        MetricPoint.app == "", MetricPoint.at >= now - SILENT).group_by(
        MetricPoint.gateway_id).subquery()
    cpu = dict(session.execute(select(MetricPoint.gateway_id, MetricPoint.value).join(
        latest, (MetricPoint.gateway_id == latest.c.gateway_id) & (MetricPoint.at == latest.c.at)
    ).where(MetricPoint.metric == "cpu_percent", MetricPoint.app == "")).tuples().all())
    rows: dict[str, dict[str, Any]] = {}
    reporting = silent = quarantined = 0
    for g in gateways:
        monitor = monitors.get(g.id)
        last = aware(monitor.last_report_at) if monitor and monitor.last_report_at else None
        state = "never" if last is None else "reporting" if now - last < SILENT else "silent"
        reporting += state == "reporting"
        silent += state == "silent"
        quarantined += bool(monitor and monitor.quarantined)
        alerts = open_alerts.get(g.id, {})
        rows[g.serial] = {"report": state, "last_report": iso(last), "cpu": cpu.get(g.id),
                          "alerts": alerts, "worst": next((s for s in SEVERITIES
                                                           if alerts.get(s)), ""),
                          "quarantined": bool(monitor and monitor.quarantined)}
    totals = {s: sum(a.get(s, 0) for a in open_alerts.values()) for s in SEVERITIES}
    cards = [("reporting", reporting, "attested"), ("silent", silent, "failed" if silent
                                                     else ""),
             ("open high alerts", totals["high"], "failed" if totals["high"] else ""),
             ("open alerts", sum(totals.values()), "stale" if sum(totals.values()) else ""),
             ("quarantined", quarantined, "failed" if quarantined else "")]
    return {"rows": rows, "cards": cards, "alerts": totals}
