"""What OS release a gateway should run: a pure choice, and a thin database wrapper.

The choice (:func:`choose`), in order:

1. its group's pinned version, if that release is published for its model;
2. else the newest release (by publish order) of its model in its channel or
   a more conservative one (stable < candidate < beta < edge) that is
   *available* to it: a release with no rollout is available to every gateway;
   under a rollout, to the gateways of the stages reached so far while the
   rollout runs, is paused or halted, to all once it finished, to none once
   aborted (a gateway already running it keeps it);
3. never a yanked release, nor one below the security version the gateway is
   known to have (it would refuse it anyway: its fuses forbid the downgrade).

The answer names TUF targets only; the gateway checks bytes and custom fields
against the signed metadata, so a wrong answer here cannot install anything
the OS vendor did not sign.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.server.db.models import (
    Gateway,
    GatewayGroup,
    OsRelease,
    Rollout,
    Tenant,
    UpdateEvent,
)
from edgeward.server.services import appassign, groups, releases, stages
from edgeward.server.services.stages import Stage


@dataclass(frozen=True)
class Policy:
    """A gateway's update policy: its group's, or the default."""

    channel: str = "stable"
    pinned_version: str | None = None
    window: str = ""
    auto_update: bool = True
    group: str | None = None  # "tenant/group", for group stages of rollouts


@dataclass(frozen=True)
class Candidate:
    version: str
    channel: str
    security_version: int
    seq: int
    yanked: bool = False


@dataclass(frozen=True)
class Gate:
    """A rollout, as far as availability goes."""

    id: int
    version: str
    state: str
    current_stage: int
    stages: tuple[Stage, ...]


@dataclass(frozen=True)
class Device:
    serial: str
    installed: str | None = None  # the release it runs, when known
    security_version: int | None = None  # the lowest it accepts, when known


@dataclass(frozen=True)
class Choice:
    version: str | None
    reason: str
    rollout_id: int | None = None


def reaches(gate: Gate, serial: str, group: str | None) -> bool:
    """Whether the rollout offers its release to this gateway now."""
    if gate.state == "finished":
        return True
    if gate.state == "aborted":
        return False
    stage = stages.stage_of(gate.stages, gate.id, serial, group)
    return stage is not None and stage <= gate.current_stage


def governing(gates: Sequence[Gate], version: str) -> Gate | None:
    """The rollout that decides about ``version``: its latest one."""
    mine = [g for g in gates if g.version == version]
    return max(mine, key=lambda g: g.id) if mine else None


def choose(device: Device, policy: Policy, candidates: Sequence[Candidate],
           gates: Sequence[Gate]) -> Choice:
    live = [c for c in candidates if not c.yanked]
    floor = device.security_version
    note = ""
    if policy.pinned_version is not None:
        pinned = next((c for c in live if c.version == policy.pinned_version), None)
        if pinned is not None:
            if floor is not None and pinned.security_version < floor:
                return Choice(None, f"pinned to {pinned.version}, whose security version "
                                    f"{pinned.security_version} is below the gateway's {floor}")
            return Choice(pinned.version, f"pinned to {pinned.version} by group "
                                          f"{policy.group}")
        note = f"pinned version {policy.pinned_version} is not published for this model; "
    allowed = releases.rank(policy.channel)
    held_back = 0
    for candidate in sorted(live, key=lambda c: c.seq, reverse=True):
        if releases.rank(candidate.channel) > allowed:
            continue
        if floor is not None and candidate.security_version < floor:
            continue
        gate = governing(gates, candidate.version)
        if gate is None:
            return Choice(candidate.version, f"{note}newest {candidate.channel} release for "
                                             f"channel {policy.channel}")
        if reaches(gate, device.serial, policy.group) or candidate.version == device.installed:
            return Choice(candidate.version, f"{note}{candidate.channel} release under rollout "
                                             f"{gate.id} ({gate.state})", gate.id)
        held_back += 1
    waiting = f" ({held_back} newer held back by rollouts)" if held_back else ""
    return Choice(None, f"{note}no release available for channel {policy.channel}{waiting}")


# -- the database side ---------------------------------------------------------------


def policy_of(gateway: Gateway, group: GatewayGroup | None, tenant: str | None) -> Policy:
    """A group counts only while it belongs to the gateway's tenant."""
    if group is None or tenant is None or group.tenant_id != gateway.tenant_id:
        return Policy()
    return Policy(group.channel, group.pinned_version, group.window, group.auto_update,
                  f"{tenant}/{group.name}")


def load_policy(session: Session, gateway: Gateway) -> Policy:
    if gateway.group_id is None:
        return Policy()
    row = session.execute(
        select(GatewayGroup, Tenant.name).join(Tenant, GatewayGroup.tenant_id == Tenant.id)
        .where(GatewayGroup.id == gateway.group_id)).first()
    return Policy() if row is None else policy_of(gateway, row[0], row[1])


def candidate(row: OsRelease) -> Candidate:
    return Candidate(row.version, row.channel, row.security_version, row.seq,
                     row.yanked_at is not None)


def gate(row: Rollout) -> Gate:
    return Gate(row.id, row.version, row.state, row.current_stage,
                stages.parse(row.stages))


def device_of(session: Session, gateway: Gateway, known: dict[str, OsRelease]) -> Device:
    """What the gateway runs (its heartbeat, else its last commit) and its security floor."""
    committed = session.execute(
        select(UpdateEvent.version).where(UpdateEvent.gateway_id == gateway.id,
                                          UpdateEvent.phase == "committed")
        .order_by(UpdateEvent.id.desc()).limit(1)).scalar_one_or_none()
    running = (gateway.versions or {}).get("rootfs")
    installed = running if running in known else committed
    floors = [known[v].security_version for v in (running, committed) if v in known]
    return Device(gateway.serial, installed, max(floors) if floors else None)


def desired(session: Session, gateway: Gateway, now: dt.datetime) -> dict[str, Any]:
    """The answer to ``GET /v1/gateway/desired``."""
    policy = load_policy(session, gateway)
    rows = releases.for_model(session, gateway.model)
    known = {r.version: r for r in rows}
    device = device_of(session, gateway, known)
    gates = [gate(r) for r in session.execute(
        select(Rollout).where(Rollout.model == gateway.model)).scalars()]
    choice = choose(device, policy, [candidate(r) for r in rows], gates)
    chosen = known.get(choice.version) if choice.version is not None else None
    running = (gateway.versions or {}).get("rootfs") or device.installed  # a delta's base
    return {"os": None if chosen is None else offer(chosen, running),
            "reason": choice.reason, "rollout_id": choice.rollout_id,
            "window": policy.window, "window_open": groups.window_open(policy.window, now),
            "auto_update": policy.auto_update,
            "apps": appassign.for_gateway(session, gateway)}  # independent of the OS stream


def offer(row: OsRelease, installed: str | None) -> dict[str, Any]:
    delta = None
    if row.delta_target is not None and row.delta_base_version == installed:
        delta = {"path": row.delta_target, "base_version": row.delta_base_version,
                 "base_sha384": row.delta_base_sha384}
    return {"version": row.version, "model": row.model,
            "security_version": row.security_version, "channel": row.channel,
            "kernel": row.kernel_target, "rootfs": row.rootfs_target, "delta": delta}
