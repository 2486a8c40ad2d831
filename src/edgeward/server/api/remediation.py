"""Remediation over the API: operators order and follow actions (tokens); gateways fetch
theirs and report how each went (mutual TLS)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from edgeward.server.api import deps
from edgeward.server.api.models import Name, Serial
from edgeward.server.api.updates import Body
from edgeward.server.services import registry, remediation
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

ActionId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Kind = Literal["stop-app", "cut-network", "restore-network", "quarantine", "release", "audit"]


class OrderRequest(Body):
    action: Kind
    app: Name | None = None
    alert: int | None = Field(default=None, ge=1, le=2**31 - 1)


class ActionReport(Body):
    status: Literal["done", "failed"]
    result: str = Field(default="", max_length=remediation.MAX_RESULT, pattern=r"^[^\x00]*$")


# -- operators (tokens) -------------------------------------------------------------------


@router.post("/v1/gateways/{serial}/actions", status_code=201, tags=["remediation"])
def order(serial: Serial, body: OrderRequest, request: Request) -> dict[str, Any]:
    """Queue an action for the gateway (about one of its alerts, if given)."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_REMEDIATE)
        row = remediation.order(session, who, serial, body.action, body.app, body.alert,
                                state.clock())
        return remediation.describe(row, serial)


@router.get("/v1/gateways/{serial}/actions", tags=["remediation"])
def listed(serial: Serial, request: Request,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The gateway's actions, newest first, with how each went."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        return remediation.listed(session, who, serial, limit)


# -- gateways (mutual TLS) ----------------------------------------------------------------


@router.get("/v1/gateway/actions", tags=["gateway"])
def fetch(request: Request) -> dict[str, Any]:
    """``{"actions": [{"id", "action", "app"}], "quarantined": bool}``: what to do, oldest
    first, until reported."""
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        return remediation.fetch(session, registry.require_enrolled(known), state.clock())


@router.post("/v1/gateway/actions/{action_id}", tags=["gateway"])
def report(action_id: ActionId, body: ActionReport, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        gateway = registry.require_enrolled(known)
        row = remediation.report(session, gateway, action_id, body.status, body.result,
                                 state.clock())
        return {"id": row.id, "status": row.status}
