"""Central logs: the lines of apps and agents the gateways ship, searchable by gateway,
app, time and words, and the lines around an alert.

A batch is stored once: its id goes into ``ingest_receipts`` with its lines, in one
transaction, so a batch sent again (the gateway never heard the answer) is answered
as a duplicate and stores nothing. Lines belong to the tenant that held the gateway
when they were shipped. Times from a gateway clock ahead of the server's are clamped
as security events' are (intake.py).

Words are searched with the database's own full-text index: SQLite's FTS5 table
``log_lines_fts`` (unicode61 words), PostgreSQL's GIN index on
``to_tsvector('simple', text)``. What a person types is never the query language:
each word is a quoted phrase (FTS5) or a plain query (PostgreSQL), all must match, and
a trailing ``*`` asks for words starting so. Words without a letter or digit search
nothing, so ``"``, ``NEAR(`` or ``*`` alone find no lines rather than an error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.orm import Session

from edgeward.errors import InputError, NotFound
from edgeward.server.db.models import Alert, Gateway
from edgeward.server.db.monitoring import IngestReceipt, LogLine
from edgeward.server.services import alerts
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.intake import occurred
from edgeward.server.services.logquota import FLOOD, FLOOD_AFTER, LogQuota, Verdict
from edgeward.server.services.registry import aware, iso
from edgeward.server.services.security import in_scope, parse_since

KIND = "logs"  # of ingest receipt
MAX_LIMIT = 1000
MAX_WORDS = 16
BEFORE_ALERT = dt.timedelta(minutes=15)
AFTER_ALERT = dt.timedelta(minutes=2)
PRUNE_BATCH = 5000
_FTS = table("log_lines_fts", column("rowid"), column("log_lines_fts"))
_WORD = re.compile(r"[^\W_]", re.UNICODE)  # a letter or digit: something to search
_PREFIX = re.compile(r"^[^\W_]+$", re.UNICODE)


@dataclass(frozen=True)
class Line:
    """One line as a gateway sent it (already validated)."""

    time: float
    app: str
    source: str
    level: str
    text: str


@dataclass(frozen=True)
class Taken:
    """What became of a batch."""

    stored: int
    duplicate: bool = False
    retry_after: float | None = None  # refused whole by the gateway's quota: come back then


def ingest(session: Session, gateway: Gateway, batch: str, lines: Sequence[Line],
           now: dt.datetime, quota: LogQuota) -> Taken:
    """Store ``batch`` unless it was stored before, if the gateway's quota takes it whole
    (refused, nothing of it is kept, so it can come again under the same id)."""
    known = session.get(IngestReceipt, (gateway.id, batch))
    if known is not None:
        if known.kind != KIND:
            raise InputError(f"batch {batch} was already used for {known.kind}")
        return Taken(0, duplicate=True)
    verdict = quota.take(gateway.id, len(lines), now) if lines else Verdict(True)
    if not verdict.admitted:
        if verdict.flooding:
            alerts.raise_alert(
                session, gateway, FLOOD,
                f"{gateway.serial} has shipped log lines faster than the server takes them "
                f"({quota.burst} at once, then {quota.rate:g} a second) for "
                f"{FLOOD_AFTER.seconds // 60} minutes: an app logging in a loop, or a long "
                "backlog; its lines wait on the gateway, whose log files keep the newest",
                now, evidence={"batch_lines": len(lines), "burst": quota.burst,
                               "rate": quota.rate})
        return Taken(0, retry_after=verdict.retry_after)
    session.add(IngestReceipt(gateway_id=gateway.id, batch=batch, kind=KIND, received_at=now))
    session.flush()  # a concurrent twin waits here, then fails (and is retried)
    if lines:
        session.execute(insert(LogLine), [
            {"tenant_id": gateway.tenant_id, "gateway_id": gateway.id, "app": line.app,
             "source": line.source, "level": line.level, "at": occurred(line.time, now),
             "text": line.text} for line in lines])
    return Taken(len(lines))


def parse_time(text: str | None, what: str, now: dt.datetime) -> dt.datetime | None:
    """A time filter (epoch seconds or ISO 8601) in UTC."""
    try:
        when = parse_since(text, now)
        return None if when is None else when.astimezone(dt.UTC)
    except (InputError, OverflowError, ValueError) as e:
        raise InputError(f"{what} {str(text)[:40]!r}: give epoch seconds or an ISO 8601 "
                         "time") from e


def words(text: str) -> list[tuple[str, bool]]:
    """What to search for: (word, whether a prefix), each with a letter or digit."""
    found = []
    for word in text.split()[:MAX_WORDS]:
        word = "".join(c for c in word if c.isprintable())
        prefix = word.endswith("*") and bool(_PREFIX.match(word.rstrip("*")))
        word = word.rstrip("*") if prefix else word
        if _WORD.search(word):
            found.append((word, prefix))
    return found


def fts5_query(terms: list[tuple[str, bool]]) -> str:
    """An FTS5 query that can only mean these words: each a quoted string (quotes
    doubled), ``*`` after a prefix."""
    return " ".join('"' + word.replace('"', '""') + '"' + ("*" if prefix else "")
                    for word, prefix in terms)


def matching(session: Session, terms: list[tuple[str, bool]]) -> ColumnElement[bool]:
    """Lines with all ``terms``, through the database's own full-text index."""
    if session.get_bind().dialect.name == "sqlite":
        return LogLine.id.in_(select(_FTS.c.rowid)
                              .where(_FTS.c.log_lines_fts.op("MATCH")(fts5_query(terms))))
    simple: ColumnElement[str] = literal_column("'simple'")  # a constant, as the index's
    plain = " ".join(word for word, prefix in terms if not prefix)
    queries: list[ColumnElement[Any]] = [func.plainto_tsquery(simple, plain)] if plain else []
    queries += [func.to_tsquery(simple, word + ":*") for word, prefix in terms if prefix]
    query = queries[0]
    for more in queries[1:]:
        query = query.op("&&")(more)
    matched: ColumnElement[bool] = func.to_tsvector(simple, LogLine.text).op("@@")(query)
    return matched


def describe(line: LogLine, serial: str) -> dict[str, Any]:
    return {"id": line.id, "time": iso(line.at), "gateway": serial, "app": line.app,
            "source": line.source, "level": line.level, "text": line.text}


def search(session: Session, principal: Principal, *, gateway: str | None = None,
           app: str | None = None, since: dt.datetime | None = None,
           until: dt.datetime | None = None, text: str | None = None, limit: int = 200,
           before_id: int | None = None) -> list[dict[str, Any]]:
    """The tenant's lines, newest first; ``before_id`` pages on from an earlier answer's
    last line."""
    authorize(principal, Action.GATEWAY_READ)
    query = (select(LogLine, Gateway.serial).join(Gateway, LogLine.gateway_id == Gateway.id)
             .where(in_scope(LogLine.tenant_id, principal)))
    if gateway:
        query = query.where(Gateway.serial == gateway)
    if app is not None and app != "":
        query = query.where(LogLine.app == app)
    if since is not None:
        query = query.where(LogLine.at >= since.astimezone(dt.UTC))
    if until is not None:
        query = query.where(LogLine.at <= until.astimezone(dt.UTC))
    if text is not None and text.strip():
        terms = words(text)
        if not terms:
            return []
        query = query.where(matching(session, terms))
    if before_id is not None:
        mark = session.execute(select(LogLine.at).where(
            LogLine.id == before_id, in_scope(LogLine.tenant_id, principal))).scalar()
        if mark is None:
            raise NotFound(f"log line {before_id} not found")
        query = query.where(or_(LogLine.at < mark,
                                and_(LogLine.at == mark, LogLine.id < before_id)))
    rows = session.execute(query.order_by(LogLine.at.desc(), LogLine.id.desc())
                           .limit(max(1, min(limit, MAX_LIMIT)))).all()
    return [describe(line, serial) for line, serial in rows]


def around(session: Session, principal: Principal, alert_id: int, *,
           before: dt.timedelta = BEFORE_ALERT, after: dt.timedelta = AFTER_ALERT,
           limit: int = 500) -> dict[str, Any]:
    """The alert and its gateway's lines from ``before`` it to ``after`` it, oldest
    first (only its app's and the agent's when the alert names an app); the nearest
    ``limit`` on each side."""
    authorize(principal, Action.ALERT_READ)
    authorize(principal, Action.GATEWAY_READ)
    found = session.execute(
        select(Alert, Gateway.serial).outerjoin(Gateway, Alert.gateway_id == Gateway.id)
        .where(Alert.id == alert_id, in_scope(Alert.tenant_id, principal))).first()
    if found is None:
        raise NotFound(f"alert {alert_id} not found")
    alert, serial = found
    summary = alerts.describe(alert, serial)
    if alert.gateway_id is None:
        return {"alert": summary, "lines": []}
    at = aware(alert.at).astimezone(dt.UTC)
    query = (select(LogLine, Gateway.serial).join(Gateway, LogLine.gateway_id == Gateway.id)
             .where(LogLine.gateway_id == alert.gateway_id,
                    in_scope(LogLine.tenant_id, principal)))
    if alert.app:
        query = query.where(LogLine.app.in_((alert.app, "")))
    limit = max(1, min(limit, MAX_LIMIT))
    earlier = session.execute(
        query.where(LogLine.at >= at - before, LogLine.at <= at)
        .order_by(LogLine.at.desc(), LogLine.id.desc()).limit(limit)).all()
    later = session.execute(
        query.where(LogLine.at > at, LogLine.at <= at + after)
        .order_by(LogLine.at, LogLine.id).limit(limit)).all()
    return {"alert": summary,
            "lines": [describe(line, s) for line, s in [*reversed(earlier), *later]]}


def prune(session: Session, older_than: dt.datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete lines (and log receipts) older than ``older_than``, ``batch`` at a time;
    how many lines went. (SQLite's delete trigger takes them out of the word index.)"""
    cutoff = older_than.astimezone(dt.UTC)
    gone = 0
    while True:
        ids = session.execute(select(LogLine.id).where(LogLine.at < cutoff)
                              .order_by(LogLine.id).limit(batch)).scalars().all()
        if not ids:
            break
        session.execute(delete(LogLine).where(LogLine.id.in_(ids)))
        gone += len(ids)
        if len(ids) < batch:
            break
    session.execute(delete(IngestReceipt).where(IngestReceipt.kind == KIND,
                                                IngestReceipt.received_at < cutoff))
    return gone
