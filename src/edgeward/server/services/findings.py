"""Audit findings: what gateways' hardening audits report, and what the fleet audits
(:mod:`.fleetaudit`) find, for operators, with what to do about each.

A gateway's report is its whole current set: findings in it are kept (``first_seen``
stays, ``last_seen`` moves on), findings no longer in it are fixed and deleted. A report
is stored once (its ``batch`` id is a receipt); one older than the last stored (delivery
is at least once, and out of order after a spool) changes nothing. A high-severity
finding that is new (or newly high) raises an alert.

Operators see their tenant's gateways' findings (a platform admin: the unassigned
pool's); a finding row keeps the tenant that held the gateway when it was reported, and
a gateway handed to another tenant shows its new tenant nothing until it reports again.
Revoked gateways' reports are not shown (they can no longer report; the fleet audit says
what matters about them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import InputError
from edgeward.server.db.models import Gateway
from edgeward.server.db.monitoring import AuditFinding, GatewayMonitor, IngestReceipt
from edgeward.server.services import alerts, fleetaudit, fleetfacts, registry
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.fleetaudit import SEVERITIES
from edgeward.server.services.registry import aware, iso
from edgeward.server.services.security import in_scope

SOURCES = ("gateway", "fleet")
KIND = "audit"  # of the ingest receipt
MAX_KIND = 64  # an alert's kind column


@dataclass(frozen=True)
class Reported:
    check: str
    severity: str
    title: str
    detail: str
    advice: str

    @property
    def fingerprint(self) -> str:
        """The same check at the same place is the same finding, whatever its wording."""
        return hashlib.sha256(f"{self.check}\0{self.detail}".encode()).hexdigest()[:32]


def _monitor(session: Session, gateway: Gateway) -> GatewayMonitor:
    row = session.get(GatewayMonitor, gateway.id)
    if row is None:  # cohort: its model until telemetry says more
        row = GatewayMonitor(gateway_id=gateway.id, cohort=gateway.model[:64], reports=0,
                             quarantined=False)
        session.add(row)
    return row


def ingest(session: Session, gateway: Gateway, batch: str, at: dt.datetime,
           reported: list[Reported], now: dt.datetime) -> dict[str, Any]:
    """Store a gateway's audit report (its whole current set of findings)."""
    for finding in reported:
        if finding.severity not in SEVERITIES:
            raise InputError(f"finding {finding.check}: severity {finding.severity!r}")
    if session.get(IngestReceipt, (gateway.id, batch)) is not None:
        return {"batch": batch, "stored": False, "reason": "duplicate"}
    session.add(IngestReceipt(gateway_id=gateway.id, batch=batch, kind=KIND, received_at=now))
    session.flush()  # a concurrent copy of this batch fails here (the route retries)
    when = min(at, now)  # a clock ahead is not believed
    monitor = _monitor(session, gateway)
    if monitor.audit_at is not None and when < aware(monitor.audit_at):
        return {"batch": batch, "stored": False, "reason": "older than the last report"}
    monitor.audit_at = when
    wanted: dict[str, Reported] = {}
    for finding in reported:
        wanted.setdefault(finding.fingerprint, finding)
    known = {row.fingerprint: row for row in session.execute(
        select(AuditFinding).where(AuditFinding.gateway_id == gateway.id)).scalars()}
    fixed = [row for key, row in known.items() if key not in wanted]
    for row in fixed:
        session.delete(row)
    new = 0
    for key, finding in wanted.items():
        old = known.get(key)
        raised = finding.severity == "high" and (old is None or old.severity != "high")
        row = old or AuditFinding(gateway_id=gateway.id, fingerprint=key,
                                  check=finding.check, first_seen=when)
        if old is None:
            new += 1
            session.add(row)
        row.tenant_id, row.severity, row.title = gateway.tenant_id, finding.severity, finding.title
        row.detail, row.advice, row.last_seen = finding.detail, finding.advice, when
        if raised:
            alerts.raise_alert(
                session, gateway, f"audit.{finding.check}"[:MAX_KIND],
                f"{gateway.serial}: {finding.title}", now, severity="high", source="audit",
                evidence={"check": finding.check, "title": finding.title,
                          "detail": finding.detail, "advice": finding.advice,
                          "fingerprint": key, "batch": batch})
    return {"batch": batch, "stored": True, "findings": len(wanted), "new": new,
            "fixed": len(fixed)}


def _reported(session: Session, principal: Principal, gateway: Gateway | None
              ) -> list[dict[str, Any]]:
    query = (select(AuditFinding, Gateway.serial)
             .join(Gateway, AuditFinding.gateway_id == Gateway.id)
             .where(in_scope(AuditFinding.tenant_id, principal),
                    in_scope(Gateway.tenant_id, principal), Gateway.status != "revoked"))
    if gateway is not None:
        query = query.where(AuditFinding.gateway_id == gateway.id)
    return [{"source": "gateway", "gateway": serial, "check": row.check,
             "severity": row.severity, "title": row.title, "detail": row.detail,
             "advice": row.advice, "first_seen": iso(row.first_seen),
             "last_seen": iso(row.last_seen)}
            for row, serial in session.execute(query).all()]


def _fleet(session: Session, principal: Principal, gateway: Gateway | None,
           now: dt.datetime, expiring_within: dt.timedelta) -> list[dict[str, Any]]:
    facts = fleetfacts.load(session, principal, gateway.serial if gateway else None)
    found = fleetaudit.audit(facts.mine, facts.everyone, facts.alerts, facts.releases,
                             facts.rollouts, now, expiring_within)
    return [{"source": "fleet", "gateway": f.gateway, "check": f.check,
             "severity": f.severity, "title": f.title, "detail": f.detail,
             "advice": f.advice, "first_seen": None, "last_seen": iso(now)} for f in found]


def listed(session: Session, principal: Principal, now: dt.datetime, *,
           gateway: str | None = None, severity: str | None = None,
           source: str | None = None,
           expiring_within: dt.timedelta = fleetaudit.EXPIRING_WITHIN,
           limit: int = 1000) -> dict[str, Any]:
    """Findings, most severe first, and how many of each severity; ``summary`` counts all
    the findings of the gateway and source asked for (``severity`` narrows the list)."""
    authorize(principal, Action.GATEWAY_READ)
    if severity is not None and severity not in SEVERITIES:
        raise InputError(f"severity {severity!r}: use one of {', '.join(SEVERITIES)}")
    if source is not None and source not in SOURCES:
        raise InputError(f"source {source!r}: use one of {', '.join(SOURCES)}")
    found = (registry.find(session, principal, gateway, Action.GATEWAY_READ)
             if gateway is not None else None)
    rows: list[dict[str, Any]] = []
    if source in (None, "gateway"):
        rows += _reported(session, principal, found)
    if source in (None, "fleet"):
        rows += _fleet(session, principal, found, now, expiring_within)
    rows.sort(key=lambda r: (SEVERITIES.index(r["severity"]), r["gateway"], r["source"],
                             r["check"], r["detail"]))
    counted = Counter(r["severity"] for r in rows)
    chosen = [r for r in rows if severity is None or r["severity"] == severity]
    return {"at": iso(now),
            "summary": {**{s: counted[s] for s in SEVERITIES}, "total": len(rows)},
            "findings": chosen[:limit], "truncated": len(chosen) > limit}
