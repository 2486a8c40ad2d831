"""The Alerts page's buttons: acknowledge, true or false positive, resolve, and respond
(stop the alert's app, cut its network, quarantine its gateway). Same-site form posts
authenticated by the session cookie, through the same services and ``Action`` checks as
the API (and audited by them); the page itself is ``routes.alerts_page``. A remediation
is ordered for the alert's own gateway and app, never for what a form names."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from edgeward.errors import InputError
from edgeward.server.services import alertlife, alerts, remediation
from edgeward.server.services.authz import Action, Principal
from edgeward.server.web.routes import form_action

router = APIRouter(include_in_schema=False)

AlertId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
Step = Literal["ack", "verdict", "resolve", "remediate"]
RESPONSES = ("stop-app", "cut-network", "quarantine")


def _apply(session: Session, who: Principal, alert_id: int, step: str,
           form: dict[str, str], now: dt.datetime) -> None:
    if step == "ack":
        alertlife.acknowledge(session, who, alert_id, now)
    elif step == "verdict":
        alertlife.judge(session, who, alert_id, form.get("verdict", ""), now)
    elif step == "resolve":
        alertlife.resolve(session, who, alert_id, now)
    else:
        response = form.get("action", "")
        if response not in RESPONSES:
            raise InputError(f"response {response!r}: use one of {', '.join(RESPONSES)}")
        alert, serial = alerts.find(session, who, alert_id, Action.GATEWAY_REMEDIATE)
        if serial is None:
            raise InputError(f"alert {alert_id} is about no gateway: nothing to act on")
        remediation.order(session, who, serial, response,
                          None if response == "quarantine" else alert.app, alert_id, now)


def _act(request: Request, alert_id: int, step: str, form: dict[str, str]) -> Response:
    back = "/alerts?status=open" if form.get("view") == "open" else "/alerts"
    return form_action(request, lambda session, who, now: _apply(
        session, who, alert_id, step, form, now), f"{back}#alert-{alert_id}")


@router.post("/alerts/{alert_id}/{step}")
async def alert_step(alert_id: AlertId, step: Step, request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    return await run_in_threadpool(_act, request, alert_id, step,
                                   {k: v[0] for k, v in form.items() if v})
