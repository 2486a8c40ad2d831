"""Remediation: what operators order a gateway to do about an alert, and its queue.

Actions: ``stop-app``, ``cut-network`` and ``restore-network`` (of one app),
``quarantine`` and ``release`` (the whole gateway: while quarantined, only its update and
monitoring channels to this server stay open), and ``audit`` (run the gateway's hardening
audit now and send its findings, rather than wait for the daily one). An order is queued
``pending``; the gateway fetches its queue over mutual TLS (``delivered``; fetched again
until it reports, so an agent that restarts mid-way misses nothing: the actions are
idempotent on the gateway) and reports each ``done`` or ``failed``. Quarantine is also a
state the server keeps (``gateway_monitor.quarantined``), set when it is ordered, so
operators see it at once and the gateway learns it with every fetch.

Each order is in the audit log of the ordering principal's tenant; ordering about an
open alert acknowledges it. A gateway's queue holds the actions of whoever holds it now.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeward.errors import Conflict, InputError, NotFound, StateError
from edgeward.server.db.models import Gateway
from edgeward.server.db.monitoring import GatewayAction, GatewayMonitor
from edgeward.server.services import alertlife, alerts, audit, registry
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.tenants import check_name

APP_ACTIONS = ("stop-app", "cut-network", "restore-network")
QUARANTINE_ACTIONS = ("quarantine", "release")
GATEWAY_ACTIONS = (*QUARANTINE_ACTIONS, "audit")
ACTIONS = APP_ACTIONS + GATEWAY_ACTIONS
OUTCOMES = ("done", "failed")
OPEN = ("pending", "delivered")  # not reported yet
MAX_OPEN = 100  # unreported actions per gateway: a queue, not a backlog
MAX_RESULT = 300


def check(action: str, app: str | None) -> str:
    """The app an action is about ("" for the whole gateway), or why the order is wrong."""
    if action not in ACTIONS:
        raise InputError(f"action {action!r}: use one of {', '.join(ACTIONS)}")
    if action in APP_ACTIONS:
        if not app:
            raise InputError(f"{action} needs the app it is about")
        return check_name("app", app)
    if app:
        raise InputError(f"{action} is about the whole gateway: give no app")
    return ""


def _same_holder(gateway: Gateway) -> Any:
    held = gateway.tenant_id
    return GatewayAction.tenant_id.is_(None) if held is None else GatewayAction.tenant_id == held


def _monitor(session: Session, gateway: Gateway) -> GatewayMonitor:
    row = session.get(GatewayMonitor, gateway.id, with_for_update=True)
    if row is None:
        row = GatewayMonitor(gateway_id=gateway.id, cohort="", reports=0, quarantined=False)
        session.add(row)
    return row


def order(session: Session, principal: Principal, gateway_serial: str, action: str,
          app: str | None, alert_id: int | None, now: dt.datetime) -> GatewayAction:
    """Queue ``action`` for a gateway of the principal's scope (about one of its alerts)."""
    authorize(principal, Action.GATEWAY_REMEDIATE)
    app = check(action, app)
    gateway = registry.find(session, principal, gateway_serial, Action.GATEWAY_REMEDIATE)
    if gateway.status == "revoked":
        raise StateError(f"gateway {gateway.serial} is revoked: it fetches nothing any more")
    if alert_id is not None:
        alert, _ = alerts.find(session, principal, alert_id, Action.ALERT_READ)
        if alert.gateway_id != gateway.id:
            raise InputError(f"alert {alert_id} is not about gateway {gateway.serial}")
        if alert.status == "open":
            alertlife.acknowledge(session, principal, alert_id, now)
    waiting = session.execute(select(func.count()).select_from(GatewayAction).where(
        GatewayAction.gateway_id == gateway.id, GatewayAction.status.in_(OPEN))).scalar_one()
    if waiting >= MAX_OPEN:
        raise Conflict(f"gateway {gateway.serial} has {waiting} actions it has not reported "
                       "yet: wait for it to fetch them")
    row = GatewayAction(tenant_id=gateway.tenant_id, gateway_id=gateway.id, action=action,
                        app=app, alert_id=alert_id, status="pending", result="",
                        requested_by=principal.actor, requested_at=now)
    session.add(row)
    if action in QUARANTINE_ACTIONS:
        monitor = _monitor(session, gateway)
        monitor.quarantined = action == "quarantine"
        monitor.quarantined_at = now if monitor.quarantined else None
    session.flush()
    audit.record(session, principal.tenant_id, principal.actor, f"gateway.{action}",
                 f"{gateway.serial}/{app}" if app else gateway.serial, now,
                 action_id=row.id, alert=alert_id)
    return row


def describe(row: GatewayAction, serial: str) -> dict[str, Any]:
    return {"id": row.id, "gateway": serial, "action": row.action, "app": row.app,
            "alert": row.alert_id, "status": row.status, "result": row.result,
            "requested_by": row.requested_by, "requested_at": alerts.iso(row.requested_at),
            "delivered_at": alerts.iso(row.delivered_at), "done_at": alerts.iso(row.done_at)}


def listed(session: Session, principal: Principal, gateway_serial: str, limit: int = 100
           ) -> list[dict[str, Any]]:
    """A gateway's actions, newest first (its current holder's)."""
    gateway = registry.find(session, principal, gateway_serial, Action.GATEWAY_READ)
    return actions_of(session, gateway, limit)


def actions_of(session: Session, gateway: Gateway, limit: int = 100) -> list[dict[str, Any]]:
    """The actions of a gateway the caller found and may read, newest first."""
    rows = session.execute(select(GatewayAction).where(
        GatewayAction.gateway_id == gateway.id, _same_holder(gateway))
        .order_by(GatewayAction.id.desc()).limit(min(limit, 1000))).scalars()
    return [describe(r, gateway.serial) for r in rows]


def for_alerts(session: Session, principal: Principal, alert_ids: list[int]
               ) -> dict[int, list[GatewayAction]]:
    """The actions ordered about each of these alerts (of the principal's scope)."""
    authorize(principal, Action.ALERT_READ)
    if not alert_ids:
        return {}
    scope = principal.scope()
    found: dict[int, list[GatewayAction]] = {}
    for row in session.execute(select(GatewayAction).where(
            GatewayAction.alert_id.in_(alert_ids),
            GatewayAction.tenant_id.is_(None) if scope is None
            else GatewayAction.tenant_id == scope).order_by(GatewayAction.id)).scalars():
        assert row.alert_id is not None
        found.setdefault(row.alert_id, []).append(row)
    return found


def quarantined(session: Session, gateway_ids: list[int]) -> set[int]:
    if not gateway_ids:
        return set()
    return set(session.execute(select(GatewayMonitor.gateway_id).where(
        GatewayMonitor.gateway_id.in_(gateway_ids),
        GatewayMonitor.quarantined.is_(True))).scalars())


def quarantined_since(session: Session, gateway: Gateway) -> str | None:
    """When this gateway was quarantined (ISO 8601), or None if it is not."""
    monitor = session.get(GatewayMonitor, gateway.id)
    if monitor is None or not monitor.quarantined:
        return None
    return alerts.iso(monitor.quarantined_at) or "unknown"


# -- the gateway's side (mutual TLS) -------------------------------------------------------


def fetch(session: Session, gateway: Gateway, now: dt.datetime) -> dict[str, Any]:
    """The gateway's unreported actions, oldest first (pending ones now ``delivered``), and
    whether it is quarantined."""
    rows = list(session.execute(select(GatewayAction).where(
        GatewayAction.gateway_id == gateway.id, GatewayAction.status.in_(OPEN),
        _same_holder(gateway)).order_by(GatewayAction.id).with_for_update()).scalars())
    for row in rows:
        if row.status == "pending":
            row.status, row.delivered_at = "delivered", now
    monitor = session.get(GatewayMonitor, gateway.id)
    return {"actions": [{"id": r.id, "action": r.action, "app": r.app} for r in rows],
            "quarantined": bool(monitor and monitor.quarantined)}


def report(session: Session, gateway: Gateway, action_id: int, status: str, result: str,
           now: dt.datetime) -> GatewayAction:
    """The gateway says how an action of its own went; the same report twice is no change,
    a different one after the first is refused."""
    if status not in OUTCOMES:
        raise InputError(f"status {status!r}: use done or failed")
    row = session.execute(select(GatewayAction).where(
        GatewayAction.id == action_id, GatewayAction.gateway_id == gateway.id)
        .with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no action {action_id} for gateway {gateway.serial}")
    if row.status in OUTCOMES:
        if row.status != status:
            raise Conflict(f"action {action_id} was reported {row.status} already")
        return row
    row.status, row.result, row.done_at = status, result[:MAX_RESULT], now
    row.delivered_at = row.delivered_at or now
    audit.record(session, row.tenant_id, f"gateway/{gateway.serial}",
                 f"gateway.action-{status}", f"{gateway.serial}/{row.app}" if row.app
                 else gateway.serial, now, action_id=row.id, ordered=row.action)
    return row
