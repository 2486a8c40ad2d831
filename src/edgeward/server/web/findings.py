"""The Findings page: what the gateways' hardening audits and the fleet audits found,
how many of each severity, grouped by severity, each with what to do about it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from edgeward.errors import NotFound
from edgeward.server.services import findings
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.fleetaudit import SEVERITIES
from edgeward.server.web.filters import query_filters
from edgeward.server.web.routes import _render

router = APIRouter(include_in_schema=False)

FILTERS = {"gateway": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
           "severity": re.compile("^(" + "|".join(SEVERITIES) + ")$"),
           "source": re.compile("^(" + "|".join(findings.SOURCES) + ")$")}
LIMIT = 2000


def filters(request: Request) -> tuple[dict[str, str], str | None]:
    return query_filters(request, FILTERS, "findings")


def grouped(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(s, [r for r in rows if r["severity"] == s]) for s in SEVERITIES
            if any(r["severity"] == s for r in rows)]


@router.get("/findings")
def findings_page(request: Request) -> Response:
    chosen, problem = filters(request)

    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        nonlocal problem
        try:
            found = findings.listed(session, who, now, gateway=chosen.get("gateway"),
                                    severity=chosen.get("severity"),
                                    source=chosen.get("source"), limit=LIMIT)
        except NotFound as e:  # a gateway not in the tenant: said, and all shown
            chosen.clear()
            problem = f"{e.message}: showing all findings"
            found = findings.listed(session, who, now, limit=LIMIT)
        return {"summary": found["summary"], "groups": grouped(found["findings"]),
                "truncated": found["truncated"], "filters": chosen, "problem": problem,
                "severities": SEVERITIES, "sources": findings.SOURCES}

    return _render(request, Action.GATEWAY_READ, "findings.html", "Findings", build)
