"""Audit findings: gateways report their hardening audit (mutual TLS), operators read
those and the fleet audits' findings (tokens)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from edgeward.server.api import deps
from edgeward.server.api.models import Serial
from edgeward.server.api.security import Epoch
from edgeward.server.api.updates import Body
from edgeward.server.services import findings, registry
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

MAX_FINDINGS = 500
MAX_CHECK = 64
MAX_TITLE = 256
MAX_TEXT = 4096  # detail, advice (as the gateway's audit caps them)
# the largest report that can be valid (plain ASCII), with room for the JSON around it
MAX_AUDIT_BODY = MAX_FINDINGS * (MAX_CHECK + MAX_TITLE + 2 * MAX_TEXT + 256) + 1024

Check = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Title = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TITLE,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")]
# several lines and tabs, no other control character
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT,
                                        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
Severity = Literal["high", "medium", "low"]


class Finding(Body):
    check: Check
    severity: Severity
    title: Title
    detail: Text
    advice: Text


class AuditReport(Body):
    batch: str = Field(pattern=r"^[0-9a-f]{32}$")
    at: Epoch
    findings: list[Finding] = Field(max_length=MAX_FINDINGS)


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.post("/v1/gateway/audit", tags=["gateway"])
def gateway_audit(body: AuditReport, request: Request) -> dict[str, Any]:
    """Replace the gateway's findings with this report's (a batch is stored once)."""
    state = state_of(request)
    at = dt.datetime.fromtimestamp(body.at, dt.UTC)
    reported = [findings.Reported(f.check, f.severity, f.title, f.detail, f.advice)
                for f in body.findings]
    for attempt in (1, 2):
        try:
            with state.db.transaction() as session:
                _, known = deps.gateway(session, request)
                return findings.ingest(session, registry.require_enrolled(known), body.batch,
                                       at, reported, state.clock())
        except IntegrityError:  # the same batch twice at once, or its first monitor row
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# -- operators (tokens) -------------------------------------------------------------------


@router.get("/v1/findings", tags=["security"])
def list_findings(request: Request, gateway: Annotated[Serial | None, Query()] = None,
                  severity: Annotated[Severity | None, Query()] = None,
                  source: Annotated[Literal["gateway", "fleet"] | None, Query()] = None,
                  expiring_within: Annotated[int, Query(ge=1, le=3650)] = 30,
                  limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> dict[str, Any]:
    """Findings of the tenant's gateways' audits (``source`` gateway) and of the fleet
    audits (``source`` fleet), most severe first, each with what to do about it; and how
    many of each severity. ``expiring_within``: days before a certificate's expiry that
    it is a finding."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        return findings.listed(session, who, state.clock(), gateway=gateway,
                               severity=severity, source=source,
                               expiring_within=dt.timedelta(days=expiring_within),
                               limit=limit)
