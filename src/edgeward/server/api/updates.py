"""OS updates over the API: what a gateway should install and its progress (mutual
TLS); groups, releases, rollouts and update state for operators (API token)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import ConfigDict, Field, StringConstraints

from edgeward.server.api import deps
from edgeward.server.api.models import Name, Serial, Strict
from edgeward.server.services import desired, groups, registry, releases, rollouts, updates
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

Channel = Literal["stable", "candidate", "beta", "edge"]
Phase = Literal["checking", "downloading", "writing", "verifying", "rebooting", "health-check",
                "committed", "rolled-back", "failed", "refused"]
State = Literal["running", "paused", "halted", "aborted", "finished"]
Model = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$")]
Window = Annotated[str, StringConstraints(
    pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9])?$")]
GroupRef = Annotated[str, StringConstraints(
    pattern=r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,63}$")]
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TenantQuery = Annotated[Name | None, Query()]


class Body(Strict):
    """Strict types too: no "1" for 1, no 0 for false."""

    model_config = ConfigDict(extra="forbid", strict=True)


class UpdateReport(Body):
    version: Version
    phase: Phase
    progress: int = Field(ge=0, le=100)
    detail: str = Field(default="", max_length=updates.MAX_DETAIL, pattern=r"^[^\x00]*$")
    rollout_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class GroupCreate(Body):
    name: Name
    channel: Channel = "stable"
    pinned_version: Version | None = None
    window: Window = ""
    auto_update: bool = True
    tenant: Name | None = None


class GroupChange(Body):
    """Only the settings given change; ``"pinned_version": null`` unpins."""

    channel: Channel | None = None
    pinned_version: Version | None = None
    window: Window | None = None
    auto_update: bool | None = None
    tenant: Name | None = None


class GroupMember(Body):
    serial: Serial
    tenant: Name | None = None


class PercentStage(Body):
    percent: int = Field(ge=1, le=100)


class GroupStage(Body):
    groups: list[GroupRef] = Field(min_length=1, max_length=50)


class RolloutRequest(Body):
    model: Model
    version: Version
    stages: list[PercentStage | GroupStage] = Field(min_length=1, max_length=20)
    error_threshold: int = Field(default=20, ge=0, le=100)
    success_threshold: int = Field(default=100, ge=1, le=100)
    min_stage_minutes: int | None = Field(default=None, ge=0, le=43200)


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.get("/v1/gateway/desired", tags=["gateway"])
def gateway_desired(request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        return desired.desired(session, registry.require_enrolled(known), state.clock())


@router.post("/v1/gateway/update", tags=["gateway"])
def gateway_update(body: UpdateReport, request: Request) -> dict[str, bool]:
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        updates.report(session, registry.require_enrolled(known), body.version, body.phase,
                       body.progress, body.detail, body.rollout_id, state.clock())
        return {"ok": True}


# -- groups ---------------------------------------------------------------------------


@router.get("/v1/groups", tags=["updates"])
def list_groups(request: Request, tenant: TenantQuery = None) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, tenant, Action.GATEWAY_LIST)
        name, found = groups.visible(session, who, tenant)
        return [groups.describe(g, name, count) for g, count in found]


@router.post("/v1/groups", status_code=201, tags=["updates"])
def create_group(body: GroupCreate, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, body.tenant, Action.GROUP_MANAGE)
        settings = body.model_dump(exclude={"name", "tenant"})
        group = groups.create(session, who, body.name, settings, state.clock(), body.tenant)
        return groups.describe(group, body.tenant or who.tenant, 0)


@router.get("/v1/groups/{name}", tags=["updates"])
def show_group(name: Name, request: Request, tenant: TenantQuery = None) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, tenant, Action.GATEWAY_LIST)
        group = groups.find(session, who, name, tenant)
        members = groups.members(session, group)
        body = groups.describe(group, tenant or who.tenant, len(members))
        body["members"] = [g.serial for g in members]
        return body


@router.patch("/v1/groups/{name}", tags=["updates"])
def change_group(name: Name, body: GroupChange, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, body.tenant, Action.GROUP_MANAGE)
        changes = {k: getattr(body, k) for k in body.model_fields_set if k != "tenant"}
        group = groups.update(session, who, name, changes, state.clock(), body.tenant)
        return groups.describe(group, body.tenant or who.tenant,
                               len(groups.members(session, group)))


@router.delete("/v1/groups/{name}", tags=["updates"])
def delete_group(name: Name, request: Request, tenant: TenantQuery = None) -> dict[str, str]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, tenant, Action.GROUP_MANAGE)
        groups.delete(session, who, name, state.clock(), tenant)
        return {"deleted": name}


@router.post("/v1/groups/{name}/gateways", tags=["updates"])
def add_member(name: Name, body: GroupMember, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, body.tenant, Action.GROUP_MANAGE)
        gateway = groups.assign(session, who, body.serial, name, state.clock(), body.tenant)
        return {"serial": gateway.serial, "group": name}


@router.delete("/v1/groups/{name}/gateways/{serial}", tags=["updates"])
def remove_member(name: Name, serial: Serial, request: Request, tenant: TenantQuery = None
                  ) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator_in(session, request, tenant, Action.GROUP_MANAGE)
        gateway = groups.remove(session, who, serial, name, state.clock(), tenant)
        return {"serial": gateway.serial, "group": None}


# -- releases, rollouts, update state -------------------------------------------------


@router.get("/v1/releases", tags=["updates"])
def list_releases(request: Request, model: Annotated[Model | None, Query()] = None,
                  channel: Annotated[Channel | None, Query()] = None,
                  yanked: bool = False) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.RELEASE_READ)
        return [releases.describe(r)
                for r in releases.listed(session, who, model, channel, yanked)]


@router.post("/v1/rollouts", status_code=201, tags=["updates"])
def create_rollout(body: RolloutRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ROLLOUT_MANAGE)
        row = rollouts.create(session, who, body.model, body.version,
                              [s.model_dump() for s in body.stages], state.clock(),
                              body.error_threshold, body.success_threshold,
                              body.min_stage_minutes)
        return rollouts.describe(rollouts.snapshot(session, row), who)


@router.get("/v1/rollouts", tags=["updates"])
def list_rollouts(request: Request, state: Annotated[State | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    server = state_of(request)
    with server.db.transaction() as session:
        who = deps.operator(session, request, Action.RELEASE_READ)
        return [rollouts.describe(s, who)
                for s in rollouts.visible(session, who, server.clock(), state, limit)]


@router.get("/v1/rollouts/{rollout_id}", tags=["updates"])
def show_rollout(rollout_id: RolloutId, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.RELEASE_READ)
        return rollouts.describe(rollouts.find(session, who, rollout_id, state.clock()), who)


def _act(request: Request, rollout_id: int, action: str) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.ROLLOUT_MANAGE)
        row = rollouts.act(session, who, rollout_id, action, state.clock())
        return rollouts.describe(rollouts.snapshot(session, row), who)


@router.post("/v1/rollouts/{rollout_id}/pause", tags=["updates"])
def pause_rollout(rollout_id: RolloutId, request: Request) -> dict[str, Any]:
    return _act(request, rollout_id, "pause")


@router.post("/v1/rollouts/{rollout_id}/resume", tags=["updates"])
def resume_rollout(rollout_id: RolloutId, request: Request) -> dict[str, Any]:
    return _act(request, rollout_id, "resume")


@router.post("/v1/rollouts/{rollout_id}/abort", tags=["updates"])
def abort_rollout(rollout_id: RolloutId, request: Request) -> dict[str, Any]:
    return _act(request, rollout_id, "abort")


@router.get("/v1/gateways/{serial}/update", tags=["updates"])
def gateway_update_state(serial: Serial, request: Request,
                         limit: Annotated[int, Query(ge=1, le=500)] = 20) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        gateway = registry.find(session, who, serial, Action.GATEWAY_READ)
        return {"serial": gateway.serial, "model": gateway.model,
                "current": updates.current(session, gateway),
                "events": updates.events(session, gateway, limit),
                "desired": desired.desired(session, gateway, state.clock())}
