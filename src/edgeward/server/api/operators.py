"""What operators call, with an API token; every route names the action it needs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from edgeward.server.api import deps
from edgeward.server.api.models import (
    AssignRequest,
    Serial,
    TenantRequest,
    TokenPrefix,
    TokenRequest,
    UserRequest,
)
from edgeward.server.services import audit, registry, remediation, tenants, tokens
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter(prefix="/v1", tags=["operator"])


@router.get("/me")
def me(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_LIST)
        return {"user": who.name, "tenant": who.tenant, "role": who.role.value,
                "actions": sorted(a.value for a in who.allowed())}


@router.get("/gateways")
def list_gateways(request: Request) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_LIST)
        now = state.clock()
        found = registry.visible(session, who)
        held = remediation.quarantined(session, [g.id for g in found])
        return [{**registry.describe(g, now), "quarantined": g.id in held} for g in found]


@router.get("/gateways/{serial}")
def show_gateway(serial: Serial, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        gateway = registry.find(session, who, serial, Action.GATEWAY_READ)
        return {**registry.describe(gateway, state.clock()),
                "quarantined": bool(remediation.quarantined(session, [gateway.id]))}


@router.post("/gateways/{serial}/revoke")
def revoke_gateway(serial: Serial, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_REVOKE)
        done = registry.describe(registry.revoke(session, who, serial, state.clock()),
                                 state.clock())
    state.revoked.forget()  # read again at the next gateway request
    return done


@router.post("/gateways/{serial}/assign")
def assign_gateway(serial: Serial, body: AssignRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.TENANT_MANAGE)
        gateway = registry.assign(session, who, serial, body.tenant, state.clock())
        return registry.describe(gateway, state.clock())


@router.get("/audit")
def audit_log(request: Request, limit: int = 100) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.AUDIT_READ)
        return [{"at": registry.iso(e.at), "actor": e.actor, "action": e.action,
                 "target": e.target, "detail": e.detail}
                for e in audit.events(session, who, max(1, min(limit, 1000)))]


@router.post("/tenants", status_code=201)
def create_tenant(body: TenantRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.TENANT_MANAGE)
        tenant = tenants.add_tenant(session, who, body.name, state.clock())
        return {"name": tenant.name}


@router.get("/users")
def list_users(request: Request) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.USER_READ)
        return [{"name": u.name, "role": u.role} for u in tenants.users(session, who)]


@router.post("/users", status_code=201)
def create_user(body: UserRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, body.tenant, Action.USER_MANAGE)
        user = tenants.add_user(session, who, body.name, body.role, state.clock(), body.tenant)
        return {"name": user.name, "role": user.role}


@router.post("/tokens", status_code=201)
def create_token(body: TokenRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, body.tenant, Action.TOKEN_MANAGE)
        token = tokens.issue_for(session, who, body.user, state.clock(), body.tenant)
        return {"user": body.user, "token": token, "prefix": token[:10]}


@router.delete("/tokens/{prefix}")
def revoke_token(prefix: TokenPrefix, request: Request) -> dict[str, str]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.TOKEN_MANAGE)
        tokens.revoke(session, who, prefix, state.clock())
        return {"revoked": prefix}
