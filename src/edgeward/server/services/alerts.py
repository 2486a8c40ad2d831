"""Alerts: raised by the server's checks, read by operators of the tenant concerned."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

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


def visible(session: Session, principal: Principal, limit: int = 100
            ) -> list[tuple[Alert, str | None]]:
    """The tenant's alerts (a platform admin's: the unassigned pool's)."""
    authorize(principal, Action.ALERT_READ)
    scope = principal.scope()
    rows = session.execute(
        select(Alert, Gateway.serial).outerjoin(Gateway, Alert.gateway_id == Gateway.id)
        .where(Alert.tenant_id.is_(None) if scope is None else Alert.tenant_id == scope)
        .order_by(Alert.at.desc(), Alert.id.desc()).limit(min(limit, 1000))
    ).all()
    return [(alert, serial) for alert, serial in rows]
