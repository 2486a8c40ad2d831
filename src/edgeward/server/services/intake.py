"""Security events from gateways: stored at once, behind a token bucket per gateway.

A looping app on one gateway must not flood the fleet server. Each gateway has a
bucket of ``burst`` events that refills at ``rate`` events per second; each event
record takes one token (its ``count`` of identical events is the gateway's own
aggregation and costs nothing more). A batch is taken in the order sent: the events
that find a token are stored, in one transaction, and the rest are dropped and
counted. The first drop raises an ``events.flood`` alert, once per gateway per quiet
window (as every alert), and the counts stay on the gateway's intake row for the
dashboard. A gateway's clock may be wrong: times later than the server's own (plus a
minute of skew) are taken as the server's now plus that minute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import EventIntake, Gateway, SecurityEvent
from edgeward.server.services import alerts
from edgeward.server.services.registry import aware

KINDS = ("syscall", "file", "network", "signal", "dbus", "limit", "crash-loop", "suppressed",
         "sandbox", "login", "listen", "remote", "exec", "boot", "update", "audit")
FLOOD = "events.flood"
SKEW = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Incoming:
    """One event as a gateway sent it (already validated)."""

    time: float
    kind: str
    what: str
    app: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    count: int = 1


def refill(tokens: float, last: dt.datetime, now: dt.datetime, burst: int,
           rate: float) -> float:
    """A token bucket's tokens now, pure: ``rate`` a second since ``last``, never above
    ``burst``. A clock that went backwards refills nothing."""
    return min(float(burst), tokens + max(0.0, (now - last).total_seconds()) * rate)


def take(tokens: float, last: dt.datetime, now: dt.datetime, wanted: int, burst: int,
         rate: float) -> tuple[int, float]:
    """The token bucket, pure: how many of ``wanted`` events pass now, and the tokens
    left."""
    available = refill(tokens, last, now, burst, rate)
    passed = max(0, min(wanted, int(available)))
    return passed, available - passed


def occurred(time: float, now: dt.datetime) -> dt.datetime:
    """When an event happened, as far as the server believes its gateway."""
    return min(dt.datetime.fromtimestamp(time, dt.UTC), now + SKEW)


def _intake(session: Session, gateway: Gateway, now: dt.datetime, burst: int) -> EventIntake:
    row = session.execute(select(EventIntake).where(EventIntake.gateway_id == gateway.id)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        row = EventIntake(gateway_id=gateway.id, tenant_id=gateway.tenant_id,
                          tokens=float(burst), refilled_at=now, accepted=0, dropped=0)
        session.add(row)
    elif row.tenant_id != gateway.tenant_id:  # handed to another tenant: counts start anew
        row.tenant_id, row.accepted, row.dropped, row.last_drop_at = (
            gateway.tenant_id, 0, 0, None)
    return row


def ingest(session: Session, gateway: Gateway, events: Sequence[Incoming], now: dt.datetime,
           burst: int, rate: float) -> tuple[int, int]:
    """Store what the bucket lets through; return (accepted, dropped)."""
    if not events:
        return 0, 0
    intake = _intake(session, gateway, now, burst)
    passed, intake.tokens = take(intake.tokens, aware(intake.refilled_at), now, len(events),
                                 burst, rate)
    intake.refilled_at = now
    dropped = len(events) - passed
    intake.accepted += passed
    intake.dropped += dropped
    if passed:
        session.execute(insert(SecurityEvent), [
            {"tenant_id": gateway.tenant_id, "gateway_id": gateway.id, "app": e.app,
             "kind": e.kind, "what": e.what, "detail": dict(e.detail), "count": e.count,
             "occurred_at": occurred(e.time, now), "received_at": now}
            for e in events[:passed]])
    if dropped:
        intake.last_drop_at = now
        alerts.raise_alert(
            session, gateway, FLOOD,
            f"{gateway.serial} sends security events faster than the server takes them "
            f"({burst} at once, then {rate:g} a second): the rest are dropped and counted "
            "(an app in a loop?)", now)
    return passed, dropped
