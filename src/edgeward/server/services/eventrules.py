"""Security events that are alerts by themselves, judged as they arrive (seconds, not
the next report):

- ``exec``: a program started from a writable filesystem (a dropper, a miner): high;
- ``login``: failed logins on a gateway past ``LOGINS`` within ``LOGIN_WINDOW``, a
  brute force: high;
- ``listen`` / ``remote``: a new listening port or remote host, judged as the
  telemetry's are (new to the gateway and rare in its cohort, :mod:`.detect`), so the
  report that follows does not raise it again;
- ``network`` denials: an app refused a connection (outside its egress list, or with
  no network at all) to a host its cohort never talks to: a beacon, a mining pool, a
  command server, stopped at the wall and named. A host the cohort does talk to (a
  misconfigured list) stays an event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import Gateway, SecurityEvent
from edgeward.server.db.monitoring import Endpoint, GatewayMonitor
from edgeward.server.detection.rarity import rare
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
    raised += _blocked(session, gateway, events, now)
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


BLOCKED = ("egress", "no-network", "landlock")  # how a connection is refused at the wall


def _blocked(session: Session, gateway: Gateway, events: Sequence[Incoming],
             now: dt.datetime) -> int:
    raised = 0
    monitor: GatewayMonitor | None = None
    size = 0
    for event in events:
        detail = event.detail
        target = str(detail.get("target", ""))
        if event.kind != "network" or detail.get("access") != "connect" or \
                detail.get("mechanism") not in BLOCKED or ":" not in target:
            continue
        host = target.rpartition(":")[0].strip("[]")
        if not host or host.startswith(("127.", "::1", "unix")):
            continue  # the gateway itself: a neighbour's port, not the outside
        if monitor is None:  # the cohort, once a batch
            monitor = telemetry.monitor_of(session, gateway, cohort_of(gateway.model, ()))
            size = session.execute(select(func.count()).select_from(GatewayMonitor).where(
                GatewayMonitor.cohort == monitor.cohort)).scalar_one()
        seen = session.execute(select(func.count(distinct(Endpoint.gateway_id))).join(
            GatewayMonitor, GatewayMonitor.gateway_id == Endpoint.gateway_id).where(
            GatewayMonitor.cohort == monitor.cohort, Endpoint.kind == "remote",
            Endpoint.value == host[:160])).scalar_one()
        if not rare(int(seen), int(size)):
            continue
        raised += alerts.raise_alert(
            session, gateway, "egress.blocked",
            f"{gateway.serial}: app {event.app or '?'} tried to reach {target}, a host "
            f"none of its cohort talks to (refused: {detail.get('mechanism')})",
            occurred(event.time, now), severity="high", app=event.app, source="event",
            evidence={"target": target, "mechanism": detail.get("mechanism"),
                      "cohort": monitor.cohort, "seen_by": int(seen)}) is not None
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
