"""Security events that are alerts by themselves, judged as they arrive (seconds, not
the next report):

- ``exec``: a program started from a writable filesystem (a dropper, a miner): high;
- ``login``: failed logins on a gateway past ``LOGINS`` within ``LOGIN_WINDOW``, a
  brute force: high;
- ``listen`` / ``remote``: a new listening port or remote host, judged as the
  telemetry's are (new to the gateway and rare in its cohort, :mod:`.detect`), so the
  report that follows does not raise it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import Gateway, SecurityEvent
from edgeward.server.services import alerts, detect, telemetry
from edgeward.server.services.cohorts import cohort_of
from edgeward.server.services.intake import Incoming, occurred

LOGINS = 20
LOGIN_WINDOW = dt.timedelta(minutes=5)


def judge(session: Session, gateway: Gateway, events: Sequence[Incoming], now: dt.datetime
          ) -> int:
    """Alerts for the stored ``events``; how many were raised."""
    raised = 0
    for event in events:
        if event.kind == "exec":
            raised += alerts.raise_alert(
                session, gateway, "exec.writable", f"{gateway.serial}: {event.what}",
                occurred(event.time, now), severity="high", app=event.app, source="event",
                evidence={"what": event.what, **event.detail}) is not None
    if any(e.kind == "login" for e in events):
        raised += _logins(session, gateway, now)
    found = [(e.kind, _value(e), e.app, str(e.detail.get("process", ""))) for e in events
             if e.kind in ("listen", "remote") and _value(e)]
    if found:
        monitor = telemetry.monitor_of(session, gateway, cohort_of(gateway.model, ()))
        new = telemetry.remember(session, gateway, found, now)
        raised += detect.endpoints(session, gateway, monitor, new, now,
                                   learning=monitor.reports < 20)
    return raised


def _value(event: Incoming) -> str:
    """The endpoint an event names, as telemetry names it."""
    detail = event.detail
    if event.kind == "listen" and detail.get("proto") and detail.get("port") is not None:
        return f"{detail['proto']}/{detail['port']}"
    return str(detail.get("host", ""))[:160] if event.kind == "remote" else ""


def _logins(session: Session, gateway: Gateway, now: dt.datetime) -> int:
    failed = session.execute(select(func.coalesce(func.sum(SecurityEvent.count), 0)).where(
        SecurityEvent.gateway_id == gateway.id, SecurityEvent.kind == "login",
        SecurityEvent.occurred_at >= now - LOGIN_WINDOW)).scalar_one()
    if int(failed) < LOGINS:
        return 0
    return alerts.raise_alert(
        session, gateway, "login.bruteforce",
        f"{gateway.serial}: {failed} failed logins in {LOGIN_WINDOW.seconds // 60} minutes "
        "(a brute force?)", now, severity="high", source="event",
        evidence={"failed": int(failed), "window_s": LOGIN_WINDOW.seconds}) is not None
