"""Operators' alert rules (tokens): list, create, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import Field, StringConstraints

from edgeward.server.api import deps
from edgeward.server.api.models import Name
from edgeward.server.api.updates import Body
from edgeward.server.services import rules
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter(prefix="/v1/alert-rules", tags=["monitoring"])
Tenant = Annotated[Name | None, Query(description="another tenant (platform admins)")]


class RuleIn(Body):
    name: Name
    metric: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    app: Annotated[str, StringConstraints(pattern=r"^(\*|[a-z0-9][a-z0-9._-]{0,63})?$")] = ""
    op: Literal[">", ">=", "<", "<="]
    threshold: float = Field(allow_inf_nan=False, ge=-1e15, le=1e15)
    duration: int = Field(ge=0, le=86400)
    severity: Literal["high", "medium", "low"] = "medium"
    tenant: Name | None = None


@router.get("")
def listed(request: Request, tenant: Tenant = None) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_READ)
        return rules.listed(session, who, tenant)


@router.post("", status_code=201)
def create(body: RuleIn, request: Request) -> dict[str, Any]:
    """A rule: ``metric`` (of ``app``: "" the gateway's, "*" any app's) ``op``
    ``threshold`` for ``duration`` seconds raises an alert of ``severity``."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_MANAGE)
        made = rules.create(session, who, body.name, body.metric, body.app, body.op,
                            body.threshold, body.duration, body.severity, state.clock(),
                            body.tenant)
        return rules.describe(made)


@router.delete("/{name}")
def delete(request: Request, name: Annotated[Name, PathParam()], tenant: Tenant = None
           ) -> dict[str, str]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ALERT_MANAGE)
        rules.delete(session, who, name, state.clock(), tenant)
    return {"deleted": name}
