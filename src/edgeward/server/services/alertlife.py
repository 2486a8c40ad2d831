"""An alert's life after it is raised: acknowledged (someone is on it), judged a true or
false positive, resolved.

``open`` -> ``acked`` -> ``resolved``; judging or resolving an open alert acknowledges it
on the way (whoever judged it looked at it). Each change is one audit record of the
principal's tenant; asking for the state an alert is already in changes nothing and
records nothing, so a double click is harmless. A verdict may be changed (the record
keeps the old one); a resolved alert is not acknowledged again. Another tenant's alert
is not found.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from edgeward.errors import InputError, StateError
from edgeward.server.db.models import Alert
from edgeward.server.services import alerts, audit
from edgeward.server.services.authz import Action, Principal

STATUSES = ("open", "acked", "resolved")
VERDICTS = ("true-positive", "false-positive")
SEVERITIES = ("critical", "high", "medium", "low")


def _target(alert: Alert, serial: str | None) -> str:
    """``SERIAL/alert/ID`` (so the gateway's page lists it), ``alert/ID`` without one."""
    return f"{serial}/alert/{alert.id}" if serial else f"alert/{alert.id}"


def _ack(alert: Alert, principal: Principal, now: dt.datetime) -> None:
    alert.status, alert.acked_by, alert.acked_at = "acked", principal.actor, now
    alert.updated_at = now


def acknowledge(session: Session, principal: Principal, alert_id: int, now: dt.datetime
                ) -> tuple[Alert, str | None]:
    """Someone is on it: ``open`` -> ``acked`` (already acked: unchanged)."""
    alert, serial = alerts.find(session, principal, alert_id, Action.ALERT_MANAGE)
    if alert.status == "resolved":
        raise StateError(f"alert {alert_id} is resolved already")
    if alert.status == "open":
        _ack(alert, principal, now)
        audit.record(session, principal.tenant_id, principal.actor, "alert.ack",
                     _target(alert, serial), now, kind=alert.kind)
    return alert, serial


def judge(session: Session, principal: Principal, alert_id: int, verdict: str,
          now: dt.datetime) -> tuple[Alert, str | None]:
    """Mark the alert a true or a false positive (acknowledging it if it was open)."""
    if verdict not in VERDICTS:
        raise InputError(f"verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
    alert, serial = alerts.find(session, principal, alert_id, Action.ALERT_MANAGE)
    if alert.verdict == verdict:
        return alert, serial
    previous = alert.verdict
    if alert.status == "open":
        _ack(alert, principal, now)
    alert.verdict, alert.updated_at = verdict, now
    audit.record(session, principal.tenant_id, principal.actor, "alert.verdict",
                 _target(alert, serial), now, kind=alert.kind, verdict=verdict,
                 previous=previous)
    return alert, serial


def resolve(session: Session, principal: Principal, alert_id: int, now: dt.datetime
            ) -> tuple[Alert, str | None]:
    """Done with it: ``resolved`` (already resolved: unchanged)."""
    alert, serial = alerts.find(session, principal, alert_id, Action.ALERT_MANAGE)
    if alert.status == "resolved":
        return alert, serial
    if alert.status == "open":
        _ack(alert, principal, now)
    alert.status, alert.updated_at = "resolved", now
    audit.record(session, principal.tenant_id, principal.actor, "alert.resolve",
                 _target(alert, serial), now, kind=alert.kind, verdict=alert.verdict)
    return alert, serial
