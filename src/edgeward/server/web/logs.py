"""The Logs page: the fleet's app and agent lines, newest first, filtered by gateway, app,
words and how far back; or, from an alert's row (``?alert=ID``), the alert and the
lines of its gateway (and app) from before it to just after, in the order they came."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from edgeward.server.services import logstore
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.registry import aware
from edgeward.server.web.filters import query_filters
from edgeward.server.web.routes import _render

router = APIRouter(include_in_schema=False)

SINCE = {"15m": dt.timedelta(minutes=15), "1h": dt.timedelta(hours=1),
         "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7)}
FILTERS = {"gateway": re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
           "app": re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$"),
           "q": re.compile(r"^[^\x00-\x1f\x7f]{1,200}$"),
           "since": re.compile("^(" + "|".join(SINCE) + ")$")}
ALERT = re.compile(r"^[1-9][0-9]{0,9}$")
SHOWN = 300


def filters(request: Request) -> tuple[dict[str, str], str | None]:
    return query_filters(request, FILTERS, "lines")


def shown(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines with their time as a person reads it (UTC, to the millisecond)."""
    return [{**line, "when": line["time"][:23].replace("T", " ")} for line in lines]


def marked(found: dict[str, Any]) -> list[dict[str, Any]]:
    """The lines around an alert, the first one after it marked (where it was raised)."""
    at = aware(dt.datetime.fromisoformat(found["alert"]["at"]))
    lines, seen = [], False
    for line in found["lines"]:
        after = aware(dt.datetime.fromisoformat(line["time"])) > at
        lines.append({**line, "after_alert": after and not seen})
        seen = seen or after
    return lines


@router.get("/logs")
def logs_page(request: Request) -> Response:
    chosen, problem = filters(request)
    wanted = request.query_params.get("alert", "").strip()
    if wanted and not ALERT.match(wanted):
        problem, wanted = f"alert={wanted[:20]!r} is not an alert's number", ""

    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        if wanted:
            found = logstore.around(session, who, int(wanted), limit=SHOWN)
            return {"alert": found["alert"], "lines": shown(marked(found)), "filters": {},
                    "problem": problem, "periods": list(SINCE)}
        since = now - SINCE[chosen["since"]] if "since" in chosen else None
        lines = logstore.search(session, who, gateway=chosen.get("gateway"),
                                app=chosen.get("app"), since=since, text=chosen.get("q"),
                                limit=SHOWN)
        return {"alert": None, "lines": shown(lines), "filters": chosen, "problem": problem,
                "periods": list(SINCE)}

    return _render(request, Action.GATEWAY_READ, "logs.html", "Logs", build)
