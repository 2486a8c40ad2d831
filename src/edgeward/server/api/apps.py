"""Apps assigned to gateway groups (operators), with the interfaces they are granted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from edgeward.server.api import deps
from edgeward.server.api.models import Name, Strict, Version
from edgeward.server.services import appassign
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter(prefix="/v1/groups", tags=["apps"])
TenantQuery = Annotated[Name | None, Query()]
Grant = Annotated[str, Field(pattern=r"^[a-z-]{2,24}(:[A-Za-z0-9]{1,16})?$")]


class Assignment(Strict):
    publisher: Name
    version: Version
    grants: list[Grant] = Field(default_factory=list, max_length=16)
    tenant: Name | None = None


@router.get("/{group}/apps")
def list_apps(group: Name, request: Request, tenant: TenantQuery = None
              ) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_LIST)
        return appassign.listed(session, who, group, tenant)


@router.put("/{group}/apps/{app}")
def assign_app(group: Name, app: Name, body: Assignment, request: Request
               ) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_LIST)
        row = appassign.assign(session, who, group, body.publisher, app, body.version,
                               list(body.grants), state.clock(), body.tenant)
        return appassign.describe(row)


@router.delete("/{group}/apps/{app}")
def unassign_app(group: Name, app: Name, request: Request, tenant: TenantQuery = None
                 ) -> dict[str, str]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_LIST)
        appassign.unassign(session, who, group, app, state.clock(), tenant)
        return {"removed": app}
