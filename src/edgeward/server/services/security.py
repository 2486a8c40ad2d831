"""Security events for operators: the latest, filtered; counts per time bucket and kind
(for a chart); and how many the rate limit dropped. A principal sees its tenant's
events (a platform admin: the unassigned pool's), never another tenant's."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from edgeward.errors import InputError
from edgeward.server.db.models import EventIntake, Gateway, SecurityEvent
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.intake import KINDS
from edgeward.server.services.registry import aware, iso

MAX_BUCKETS = 1440
DEFAULT_WINDOW = dt.timedelta(hours=1)


def parse_since(text: str | None, now: dt.datetime) -> dt.datetime | None:
    """``since`` as epoch seconds or an ISO 8601 time (UTC unless it names a zone)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:
            raise InputError(f"since {text!r}: epoch seconds out of range")
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    if "T" in text and text.count(" ") == 1:  # a '+' a query string turned into a space
        text = text.replace(" ", "+")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InputError(f"since {text!r}: give epoch seconds or an ISO 8601 time") from e
    return aware(when)


def in_scope(column: Any, principal: Principal) -> ColumnElement[bool]:
    """Rows of the principal's tenant (for a platform admin: of the unassigned pool)."""
    scope = principal.scope()
    result: ColumnElement[bool] = column.is_(None) if scope is None else column == scope
    return result


def describe(event: SecurityEvent, serial: str) -> dict[str, Any]:
    return {"id": event.id, "time": iso(event.occurred_at), "gateway": serial,
            "app": event.app, "kind": event.kind, "what": event.what, "detail": event.detail,
            "count": event.count, "received_at": iso(event.received_at)}


def listed(session: Session, principal: Principal, *, gateway: str | None = None,
           app: str | None = None, kind: str | None = None,
           since: dt.datetime | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The latest events, newest first."""
    authorize(principal, Action.GATEWAY_READ)
    query = (select(SecurityEvent, Gateway.serial)
             .join(Gateway, SecurityEvent.gateway_id == Gateway.id)
             .where(in_scope(SecurityEvent.tenant_id, principal)))
    if gateway:
        query = query.where(Gateway.serial == gateway)
    if app:
        query = query.where(SecurityEvent.app == app)
    if kind:
        query = query.where(SecurityEvent.kind == kind)
    if since is not None:
        query = query.where(SecurityEvent.occurred_at >= since)
    rows = session.execute(query.order_by(SecurityEvent.occurred_at.desc(),
                                          SecurityEvent.id.desc())
                           .limit(max(1, min(limit, 1000)))).all()
    return [describe(event, serial) for event, serial in rows]


def _bucket_of(session: Session, bucket: int) -> ColumnElement[Any]:
    """Which ``bucket``-second slot since the epoch an event's time falls in, in SQL."""
    column = SecurityEvent.occurred_at
    if session.get_bind().dialect.name == "sqlite":  # stored as UTC text; whole seconds
        return cast(func.strftime("%s", column), Integer) / bucket
    return cast(func.floor(func.extract("epoch", column) / bucket), BigInteger)


def summary(session: Session, principal: Principal, now: dt.datetime,
            since: dt.datetime | None = None, bucket: int = 60) -> dict[str, Any]:
    """Events (the sum of their counts) per ``bucket`` seconds and kind, from ``since``
    (default: an hour ago) to now; buckets start at multiples of ``bucket`` seconds."""
    authorize(principal, Action.GATEWAY_READ)
    if not 1 <= bucket <= 86400:
        raise InputError("bucket must be 1..86400 seconds")
    since = since or now - DEFAULT_WINDOW
    first = math.floor(since.timestamp() / bucket)
    count = max(1, math.ceil(now.timestamp() / bucket) - first)
    if count > MAX_BUCKETS:
        raise InputError(f"{count} buckets of {bucket} s since {iso(since)}: at most "
                         f"{MAX_BUCKETS}; give a larger bucket or a later since")
    start = dt.datetime.fromtimestamp(first * bucket, dt.UTC)
    slot = _bucket_of(session, bucket).label("slot")
    rows = session.execute(
        select(slot, SecurityEvent.kind, func.sum(SecurityEvent.count))
        .where(in_scope(SecurityEvent.tenant_id, principal),
               SecurityEvent.occurred_at >= start)
        .group_by(slot, SecurityEvent.kind)).all()
    counts: list[dict[str, int]] = [{} for _ in range(count)]
    for index, kind, total in rows:
        at = min(max(int(index) - first, 0), count - 1)  # a clock a little ahead: the last
        counts[at][kind] = counts[at].get(kind, 0) + int(total)
    by_kind = {k: sum(c.get(k, 0) for c in counts) for k in KINDS}
    return {"since": iso(start), "until": iso(now), "bucket": bucket, "kinds": list(KINDS),
            "total": sum(by_kind.values()), "by_kind": by_kind,
            "buckets": [{"start": iso(start + dt.timedelta(seconds=i * bucket)),
                         "counts": c, "total": sum(c.values())}
                        for i, c in enumerate(counts)],
            "dropped": dropped(session, principal)}


def dropped(session: Session, principal: Principal, gateway: Gateway | None = None
            ) -> dict[str, Any]:
    """Events the rate limit dropped: in all, and per gateway that had any."""
    query = (select(EventIntake, Gateway.serial)
             .join(Gateway, EventIntake.gateway_id == Gateway.id)
             .where(in_scope(EventIntake.tenant_id, principal), EventIntake.dropped > 0))
    if gateway is not None:
        query = query.where(EventIntake.gateway_id == gateway.id)
    rows = session.execute(query.order_by(Gateway.serial)).all()
    return {"total": sum(r.dropped for r, _ in rows),
            "gateways": [{"gateway": serial, "dropped": r.dropped, "accepted": r.accepted,
                          "last_drop_at": iso(r.last_drop_at)} for r, serial in rows]}
