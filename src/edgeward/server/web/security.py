"""The Security page: app denials and other security events from the fleet, per minute
over the last hour by kind (an inline SVG chart, as the Updates page draws its
rollouts), the latest events with filters, and what the rate limit dropped."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from edgeward.server.services import security
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.intake import KINDS
from edgeward.server.web.filters import query_filters
from edgeward.server.web.routes import _render

router = APIRouter(include_in_schema=False)

COLOURS = {"syscall": "#b42318", "file": "#9a6700", "network": "#1f6feb",
           "signal": "#8250df", "dbus": "#0e7490", "limit": "#bf5700",
           "crash-loop": "#57606a", "suppressed": "#a8b1bd", "sandbox": "#12753a",
           "login": "#cf222e", "listen": "#6639ba", "remote": "#0550ae", "exec": "#953800",
           "boot": "#1a7f37", "update": "#4d2d00", "audit": "#7d4e00"}
FILTERS = {"gateway": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
           "app": re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$"),
           "kind": re.compile("^(" + "|".join(re.escape(k) for k in KINDS) + ")$")}
PLOT = {"left": 44, "top": 10, "width": 720, "height": 150}


def chart(summary: dict[str, Any]) -> dict[str, Any]:
    """Stacked columns, one per bucket, a bar per kind: geometry for the template."""
    buckets = summary["buckets"]
    peak = max((b["total"] for b in buckets), default=0) or 1
    step = PLOT["width"] / max(len(buckets), 1)
    columns = []
    for i, b in enumerate(buckets):
        bottom = PLOT["top"] + PLOT["height"]
        bars = []
        for kind in KINDS:
            count = b["counts"].get(kind, 0)
            if not count:
                continue
            height = PLOT["height"] * count / peak
            bottom -= height
            bars.append({"kind": kind, "count": count, "y": round(bottom, 2),
                         "height": round(height, 2), "colour": COLOURS[kind]})
        columns.append({"x": round(PLOT["left"] + i * step, 2), "width": round(step - 2, 2),
                        "start": b["start"], "total": b["total"], "bars": bars})
    return {"columns": columns, "peak": peak, "plot": PLOT,
            "legend": [(k, COLOURS[k], summary["by_kind"][k]) for k in KINDS]}


def filters(request: Request) -> tuple[dict[str, str], str | None]:
    return query_filters(request, FILTERS, "events")


@router.get("/security")
def security_page(request: Request) -> Response:
    chosen, problem = filters(request)

    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        summary = security.summary(session, who, now, now - dt.timedelta(hours=1), 60)
        return {"chart": chart(summary), "summary": summary, "filters": chosen,
                "problem": problem, "kinds": KINDS,
                "events": security.listed(session, who, gateway=chosen.get("gateway"),
                                          app=chosen.get("app"), kind=chosen.get("kind"),
                                          limit=100)}

    return _render(request, Action.GATEWAY_READ, "security.html", "Security", build)
