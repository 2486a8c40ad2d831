"""Alerts over the API: list (filtered), acknowledge, judge, resolve; the tenant's web hook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.orm import Session

from edgeward.server.api import deps
from edgeward.server.api.models import Serial
from edgeward.server.api.updates import Body
from edgeward.server.services import alerthooks, alertlife, alerts
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter(prefix="/v1", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Status = Literal["open", "acked", "resolved"]
Severity = Literal["critical", "high", "medium", "low"]


class VerdictRequest(Body):
    verdict: Literal["true-positive", "false-positive"]


class HookRequest(Body):
    url: str


@router.get("/alerts")
def list_alerts(request: Request, limit: int = 100,
                status: Annotated[Status | None, Query()] = None,
                severity: Annotated[Severity | None, Query()] = None,
                gateway: Annotated[Serial | None, Query()] = None) -> list[dict[str, Any]]:
    """The tenant's alerts, newest first."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_READ)
        return [alerts.describe(a, serial) for a, serial in alerts.visible(
            session, who, max(1, min(limit, 1000)), status=status, severity=severity,
            gateway=gateway)]


@router.post("/alerts/{alert_id}/ack")
def acknowledge(alert_id: AlertId, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_MANAGE)
        return alerts.describe(*alertlife.acknowledge(session, who, alert_id, state.clock()))


@router.post("/alerts/{alert_id}/verdict")
def verdict(alert_id: AlertId, body: VerdictRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_MANAGE)
        return alerts.describe(*alertlife.judge(session, who, alert_id, body.verdict,
                                                state.clock()))


@router.post("/alerts/{alert_id}/resolve")
def resolve(alert_id: AlertId, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_MANAGE)
        return alerts.describe(*alertlife.resolve(session, who, alert_id, state.clock()))


@router.put("/alert-hook")
def set_hook(body: HookRequest, request: Request) -> dict[str, Any]:
    """Set the tenant's web hook; the answer holds its signing key, this once."""
    state = state_of(request)
    master = state.master()

    def work(session: Session) -> dict[str, Any]:
        who = deps.operator(session, request, Action.ALERT_HOOK)
        hook, key = alerthooks.put(session, who, master, body.url, state.clock(),
                                     state.hook_networks)
        return {**alerthooks.describe(hook), "key": key}

    return deps.once_more(request, work)


@router.get("/alert-hook")
def show_hook(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_HOOK)
        return alerthooks.describe(alerthooks.show(session, who))


@router.delete("/alert-hook")
def delete_hook(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_HOOK)
        alerthooks.remove(session, who, state.clock())
        return {"deleted": True}
