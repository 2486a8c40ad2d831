"""Alerts: raised by the server's checks, read by operators of the tenant concerned (their
life after that, acknowledged, judged and resolved, is :mod:`.alertlife`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from edgeward.errors import NotFound
from edgeward.server.db.models import Alert, Gateway
from edgeward.server.services.authz import Action, Principal, authorize

QUIET = dt.timedelta(minutes=10)  # one alert of a kind per gateway per window, not a flood


def raise_alert(session: Session, gateway: Gateway, kind: str, detail: str,
                now: dt.datetime, *, severity: str = "medium", app: str = "",
                source: str = "", evidence: dict[str, Any] | None = None) -> Alert | None:
    """Record an alert unless the same one (kind, app) was raised in the quiet window;
    return it (None when held back)."""
    recent = session.execute(
        select(Alert).where(Alert.gateway_id == gateway.id, Alert.kind == kind,
                            Alert.app == app, Alert.at >= now - QUIET).limit(1)
    ).first()
    if recent is not None:
        return None
    alert = Alert(tenant_id=gateway.tenant_id, gateway_id=gateway.id, kind=kind,
                  detail=detail, at=now, severity=severity, status="open", app=app,
                  source=source, evidence=evidence, updated_at=now)
    session.add(alert)
    return alert


def follow(session: Session, gateway: Gateway) -> None:
    """Alerts about a gateway belong to whoever holds it now."""
    session.execute(update(Alert).where(Alert.gateway_id == gateway.id)
                    .values(tenant_id=gateway.tenant_id))


def in_scope(scope: int | None) -> ColumnElement[bool]:
    """Alerts of a tenant (None: the unassigned pool, a platform admin's)."""
    return Alert.tenant_id.is_(None) if scope is None else Alert.tenant_id == scope


def visible(session: Session, principal: Principal, limit: int = 100, *,
            status: str | None = None, severity: str | None = None,
            gateway: str | None = None) -> list[tuple[Alert, str | None]]:
    """The tenant's alerts (a platform admin's: the unassigned pool's), newest first;
    optionally only of one status, severity or gateway (by serial)."""
    authorize(principal, Action.ALERT_READ)
    query = (select(Alert, Gateway.serial).outerjoin(Gateway, Alert.gateway_id == Gateway.id)
             .where(in_scope(principal.scope())))
    if status is not None:
        query = query.where(Alert.status == status)
    if severity is not None:
        query = query.where(Alert.severity == severity)
    if gateway is not None:
        query = query.where(Gateway.serial == gateway)
    rows = session.execute(
        query.order_by(Alert.at.desc(), Alert.id.desc()).limit(min(limit, 1000))).all()
    return [(alert, serial) for alert, serial in rows]


def find(session: Session, principal: Principal, alert_id: int, action: Action
         ) -> tuple[Alert, str | None]:
    """One alert of the principal's scope (another tenant's is simply not found)."""
    authorize(principal, action)
    row = session.execute(
        select(Alert, Gateway.serial).outerjoin(Gateway, Alert.gateway_id == Gateway.id)
        .where(Alert.id == alert_id, in_scope(principal.scope()))).first()
    if row is None:
        raise NotFound(f"no alert {alert_id} in tenant {principal.tenant}")
    return row[0], row[1]


def describe(alert: Alert, serial: str | None) -> dict[str, Any]:
    return {"id": alert.id, "at": iso(alert.at), "gateway": serial, "kind": alert.kind,
            "app": alert.app, "severity": alert.severity, "status": alert.status,
            "verdict": alert.verdict, "source": alert.source, "detail": alert.detail,
            "evidence": alert.evidence, "acked_by": alert.acked_by,
            "acked_at": iso(alert.acked_at)}


def iso(when: dt.datetime | None) -> str | None:
    """As ``registry.iso`` (which imports this module): SQLite drops the zone."""
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()
