"""Telemetry over time: a gateway's series for a chart, and the store kept bounded.

Raw points are kept for ``RAW_FOR``; older ones are rolled up into 5-minute summaries
(count, mean, low, high), those after ``FINE_FOR`` into hourly ones, and hourly ones
are dropped after ``KEEP_FOR``. A series is read from whichever the window needs and
cut into at most ``points`` buckets, so a chart of a year costs what a chart of an
hour does. Receipts of batches (ingest's idempotency) are kept a week.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import Gateway
from edgeward.server.db.monitoring import IngestReceipt, MetricPoint, MetricRollup
from edgeward.server.services import registry
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.registry import aware, iso

RAW_FOR = dt.timedelta(days=2)
FINE_FOR = dt.timedelta(days=30)
KEEP_FOR = dt.timedelta(days=365)
RECEIPTS_FOR = dt.timedelta(days=7)
FINE, COARSE = 300, 3600
DEFAULT_WINDOW = dt.timedelta(hours=6)
CHUNK = 20000


@dataclass
class _Summary:
    count: int = 0
    mean: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, count: int, mean: float, low: float, high: float) -> None:
        total = self.count + count
        self.mean = (self.mean * self.count + mean * count) / total
        self.count, self.low, self.high = total, min(self.low, low), max(self.high, high)


def series(session: Session, principal: Principal, serial: str, metric: str, app: str,
           since: dt.datetime | None, now: dt.datetime, points: int = 240) -> dict[str, Any]:
    """A gateway's series, if the principal may read the gateway."""
    gateway = registry.find(session, principal, serial, Action.GATEWAY_READ)
    return series_of(session, gateway, metric, app, since, now, points)


def series_of(session: Session, gateway: Gateway, metric: str, app: str,
              since: dt.datetime | None, now: dt.datetime, points: int = 240
              ) -> dict[str, Any]:
    """The series of a gateway already found (and read-checked) by the caller: raw points
    and roll-ups alike, in ``points`` buckets."""
    serial = gateway.serial
    since = since or now - DEFAULT_WINDOW
    step = max(30, math.ceil((now - since).total_seconds() / points))
    buckets: dict[int, _Summary] = defaultdict(_Summary)
    origin = since.timestamp()

    def put(at: dt.datetime, count: int, mean: float, low: float, high: float) -> None:
        index = int((aware(at).timestamp() - origin) // step)
        if 0 <= index < points + 1:
            buckets[index].add(count, mean, low, high)

    for at, value in session.execute(select(MetricPoint.at, MetricPoint.value).where(
            MetricPoint.gateway_id == gateway.id, MetricPoint.metric == metric,
            MetricPoint.app == app, MetricPoint.at >= since)).tuples():
        put(at, 1, value, value, value)
    for row in session.execute(select(MetricRollup).where(
            MetricRollup.gateway_id == gateway.id, MetricRollup.metric == metric,
            MetricRollup.app == app, MetricRollup.start >= since)).scalars():
        put(row.start, row.count, row.mean, row.low, row.high)
    return {"gateway": serial, "metric": metric, "app": app, "since": iso(since),
            "until": iso(now), "step": step,
            "points": [{"at": iso(dt.datetime.fromtimestamp(origin + i * step, dt.UTC)),
                        "mean": round(s.mean, 4), "low": s.low, "high": s.high,
                        "count": s.count} for i, s in sorted(buckets.items())]}


def _roll(session: Session, rows: list[tuple[int, str, str, dt.datetime, int, float, float,
                                              float]], resolution: int) -> None:
    """Merge (gateway, metric, app, at, count, mean, low, high) into ``resolution``
    roll-ups, adding to any that exist."""
    merged: dict[tuple[int, str, str, dt.datetime], _Summary] = defaultdict(_Summary)
    for gateway_id, metric, app, at, count, mean, low, high in rows:
        stamp = aware(at).timestamp()
        start = dt.datetime.fromtimestamp(stamp - stamp % resolution, dt.UTC)
        merged[(gateway_id, metric, app, start)].add(count, mean, low, high)
    for (gateway_id, metric, app, start), summary in merged.items():
        row = session.get(MetricRollup, (gateway_id, metric, app, resolution, start))
        if row is None:
            session.add(MetricRollup(gateway_id=gateway_id, metric=metric, app=app,
                                     resolution=resolution, start=start, count=summary.count,
                                     mean=summary.mean, low=summary.low, high=summary.high))
        else:
            summary.add(row.count, row.mean, row.low, row.high)
            row.count, row.mean, row.low, row.high = (summary.count, summary.mean,
                                                      summary.low, summary.high)
    session.flush()


def compact(session: Session, now: dt.datetime) -> dict[str, int]:
    """One pass of retention: roll up and drop what is due. Call it in a transaction of
    its own; it works in chunks, so call again while it reports work done."""
    done = {"points": 0, "fine": 0, "coarse": 0, "receipts": 0}
    raw = session.execute(select(MetricPoint.id, MetricPoint.gateway_id, MetricPoint.metric,
                                 MetricPoint.app, MetricPoint.at, MetricPoint.value)
                          .where(MetricPoint.at < now - RAW_FOR)
                          .order_by(MetricPoint.id).limit(CHUNK)).tuples().all()
    if raw:
        _roll(session, [(g, m, a, at, 1, v, v, v) for _, g, m, a, at, v in raw], FINE)
        session.execute(delete(MetricPoint).where(MetricPoint.id.in_([r[0] for r in raw])))
        done["points"] = len(raw)
    fine = session.execute(select(MetricRollup).where(
        MetricRollup.resolution == FINE, MetricRollup.start < now - FINE_FOR)
        .limit(CHUNK)).scalars().all()
    if fine:
        rows = [(r.gateway_id, r.metric, r.app, r.start, r.count, r.mean, r.low, r.high)
                for r in fine]
        for r in fine:
            session.delete(r)
        session.flush()
        _roll(session, rows, COARSE)
        done["fine"] = len(fine)
    done["coarse"] = session.execute(delete(MetricRollup).where(
        MetricRollup.resolution == COARSE, MetricRollup.start < now - KEEP_FOR)
        ).rowcount or 0
    done["receipts"] = session.execute(delete(IngestReceipt).where(
        IngestReceipt.received_at < now - RECEIPTS_FOR)).rowcount or 0
    return done
