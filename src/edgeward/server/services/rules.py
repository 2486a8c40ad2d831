"""Operators' alert rules: ``metric [of app] op threshold for duration`` per tenant, run
by the detectors on every report of the tenant's gateways (:mod:`.detect`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import delete as sa_delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import Conflict, InputError, NotFound
from edgeward.server.db.monitoring import AlertRule, DetectorState
from edgeward.server.detection.rules import OPS, Rule
from edgeward.server.services import audit
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.groups import tenant_of
from edgeward.server.services.registry import iso
from edgeward.server.services.tenants import check_name

METRIC = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
APP = re.compile(r"^(\*|[a-z0-9][a-z0-9._-]{0,63})?$")
SEVERITIES = ("high", "medium", "low")


def describe(rule: AlertRule) -> dict[str, Any]:
    made = Rule(rule.name, rule.metric, rule.app, rule.op, rule.threshold, rule.duration)
    return {"name": rule.name, "metric": rule.metric, "app": rule.app, "op": rule.op,
            "threshold": rule.threshold, "duration": rule.duration,
            "severity": rule.severity, "created_by": rule.created_by,
            "created_at": iso(rule.created_at), "reads": made.describe()}


def create(session: Session, principal: Principal, name: str, metric: str, app: str, op: str,
           threshold: float, duration: int, severity: str, now: dt.datetime,
           tenant: str | None = None) -> AlertRule:
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.ALERT_MANAGE)
    check_name("rule", name)
    if not METRIC.fullmatch(metric):
        raise InputError(f"metric {metric!r}: e.g. cpu_percent, memory_percent, net_tx_rate")
    if not APP.fullmatch(app):
        raise InputError(f"app {app!r}: an app's name, '*' for any app, '' for the gateway")
    if op not in OPS or severity not in SEVERITIES:
        raise InputError(f"op must be one of {', '.join(OPS)}; severity one of "
                         f"{', '.join(SEVERITIES)}")
    Rule(name, metric, app, op, threshold, duration)  # checks the rest
    known = session.execute(select(AlertRule.id).where(
        AlertRule.tenant_id == tenant_id, AlertRule.name == name)).first()
    if known is not None:
        raise Conflict(f"tenant {tenant_name} has a rule {name} already")
    rule = AlertRule(tenant_id=tenant_id, name=name, metric=metric, app=app, op=op,
                     threshold=threshold, duration=duration, severity=severity,
                     created_by=principal.actor, created_at=now)
    session.add(rule)
    session.flush()
    audit.record(session, tenant_id, principal.actor, "rule.create", name, now,
                 reads=describe(rule)["reads"], severity=severity)
    return rule


def listed(session: Session, principal: Principal, tenant: str | None = None
           ) -> list[dict[str, Any]]:
    tenant_id, _ = tenant_of(session, principal, tenant, Action.ALERT_READ)
    return [describe(r) for r in session.execute(select(AlertRule).where(
        AlertRule.tenant_id == tenant_id).order_by(AlertRule.name)).scalars()]


def delete(session: Session, principal: Principal, name: str, now: dt.datetime,
           tenant: str | None = None) -> None:
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.ALERT_MANAGE)
    rule = session.execute(select(AlertRule).where(
        AlertRule.tenant_id == tenant_id, AlertRule.name == name)).scalar_one_or_none()
    if rule is None:
        raise NotFound(f"no rule {name} in tenant {tenant_name}")
    session.execute(sa_delete(DetectorState).where(
        DetectorState.key.like(f"rule:{rule.id}:%")))
    session.delete(rule)
    audit.record(session, tenant_id, principal.actor, "rule.delete", name, now)
