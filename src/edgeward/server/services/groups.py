"""Gateway groups: a tenant's update policy (channel, pinned version, window, auto).

A group belongs to one tenant and holds only that tenant's gateways. A
principal manages the groups of its own tenant; a platform admin may name
another tenant (tenant management). Another tenant's group or gateway is
"not found", as everywhere else. A gateway in no group follows the default
policy: channel stable, any time, automatic.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgeward.errors import Conflict, InputError, NotFound
from edgeward.server.db.models import Gateway, GatewayGroup, Tenant
from edgeward.server.services import audit, releases
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.tenants import check_name
from edgeward.trust.targets import VERSION

WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
SETTINGS = ("channel", "pinned_version", "window", "auto_update")


def _minutes(window: str) -> tuple[int, int]:
    found = WINDOW.match(window)
    if found is None:
        raise InputError(f"window {window!r}: use HH:MM-HH:MM (UTC), or empty for any time")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    return h1 * 60 + m1, h2 * 60 + m2


def check_window(window: str) -> str:
    if window:
        start, end = _minutes(window)
        if start == end:
            raise InputError(f"window {window!r} is empty: start and end differ")
    return window


def window_open(window: str, now: dt.datetime) -> bool:
    """Whether ``now`` (UTC) falls in ``window``: [start, end), wrapping past midnight."""
    if not window:
        return True
    start, end = _minutes(window)
    utc = now.astimezone(dt.UTC) if now.tzinfo else now
    minute = utc.hour * 60 + utc.minute
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def check_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Validated group settings (only those given)."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise InputError(f"unknown group settings: {', '.join(sorted(unknown))}")
    if "channel" in changes:
        releases.rank(changes["channel"])
    pinned = changes.get("pinned_version")
    if pinned is not None and not VERSION.match(pinned):
        raise InputError(f"pinned version {pinned!r} is not a valid release version")
    if "window" in changes:
        check_window(changes["window"])
    if "auto_update" in changes and not isinstance(changes["auto_update"], bool):
        raise InputError("auto_update must be true or false")
    return changes


def tenant_of(session: Session, principal: Principal, tenant: str | None,
              action: Action) -> tuple[int, str]:
    """The tenant a group request acts in: one's own (``action``), or, for a platform
    admin naming another, that one (tenant management)."""
    if tenant is None or tenant == principal.tenant:
        authorize(principal, action)
        return principal.tenant_id, principal.tenant
    authorize(principal, Action.TENANT_MANAGE)
    found = session.execute(select(Tenant).where(Tenant.name == tenant)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no tenant {tenant}")
    return found.id, found.name


def _find(session: Session, tenant_id: int, tenant: str, name: str) -> GatewayGroup:
    group = session.execute(select(GatewayGroup).where(
        GatewayGroup.tenant_id == tenant_id, GatewayGroup.name == name)).scalar_one_or_none()
    if group is None:
        raise NotFound(f"no group {name} in tenant {tenant}")
    return group


def find(session: Session, principal: Principal, name: str, tenant: str | None = None
         ) -> GatewayGroup:
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GATEWAY_LIST)
    return _find(session, tenant_id, tenant_name, name)


def create(session: Session, principal: Principal, name: str, settings: dict[str, Any],
           now: dt.datetime, tenant: str | None = None) -> GatewayGroup:
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GROUP_MANAGE)
    check_name("group", name)
    settings = check_settings({k: v for k, v in settings.items() if v is not None
                               or k == "pinned_version"})
    exists = session.execute(select(GatewayGroup.id).where(
        GatewayGroup.tenant_id == tenant_id, GatewayGroup.name == name)).first()
    if exists:
        raise Conflict(f"group {name} already exists in tenant {tenant_name}")
    group = GatewayGroup(tenant_id=tenant_id, name=name, channel="stable", pinned_version=None,
                         window="", auto_update=True, created_at=now)
    for key, value in settings.items():
        setattr(group, key, value)
    session.add(group)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(f"group {name} already exists in tenant {tenant_name}") from e
    audit.record(session, tenant_id, principal.actor, "group.create", name, now, **settings)
    return group


def update(session: Session, principal: Principal, name: str, changes: dict[str, Any],
           now: dt.datetime, tenant: str | None = None) -> GatewayGroup:
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GROUP_MANAGE)
    group = _find(session, tenant_id, tenant_name, name)
    check_settings(changes)
    for key in ("channel", "window", "auto_update"):
        if key in changes and changes[key] is None:
            raise InputError(f"{key} cannot be null")
    for key, value in changes.items():
        setattr(group, key, value)
    audit.record(session, tenant_id, principal.actor, "group.update", name, now, **changes)
    return group


def delete(session: Session, principal: Principal, name: str, now: dt.datetime,
           tenant: str | None = None) -> None:
    """Remove a group; its gateways fall back to the default policy."""
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GROUP_MANAGE)
    group = _find(session, tenant_id, tenant_name, name)
    for gateway in members(session, group):
        gateway.group_id = None
    session.delete(group)
    audit.record(session, tenant_id, principal.actor, "group.delete", name, now)


def assign(session: Session, principal: Principal, serial: str, name: str,
           now: dt.datetime, tenant: str | None = None) -> Gateway:
    """Put a gateway of the tenant into one of its groups (out of any other)."""
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GROUP_MANAGE)
    gateway = session.execute(select(Gateway).where(
        Gateway.serial == serial, Gateway.tenant_id == tenant_id)).scalar_one_or_none()
    if gateway is None:
        raise NotFound(f"no gateway {serial} in tenant {tenant_name}")
    gateway.group_id = _find(session, tenant_id, tenant_name, name).id
    audit.record(session, tenant_id, principal.actor, "group.assign", serial, now, group=name)
    return gateway


def remove(session: Session, principal: Principal, serial: str, name: str,
           now: dt.datetime, tenant: str | None = None) -> Gateway:
    """Take a gateway out of a group (back to the default policy)."""
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GROUP_MANAGE)
    group = _find(session, tenant_id, tenant_name, name)
    gateway = next((g for g in members(session, group) if g.serial == serial), None)
    if gateway is None:
        raise NotFound(f"no gateway {serial} in group {name}")
    gateway.group_id = None
    audit.record(session, tenant_id, principal.actor, "group.remove", serial, now, group=name)
    return gateway


def members(session: Session, group: GatewayGroup) -> list[Gateway]:
    """The group's gateways (only the group's tenant's: a gateway handed to another
    tenant no longer counts, whatever its stale group id says)."""
    return list(session.execute(select(Gateway).where(
        Gateway.group_id == group.id, Gateway.tenant_id == group.tenant_id)
        .order_by(Gateway.serial)).scalars())


def visible(session: Session, principal: Principal, tenant: str | None = None
            ) -> tuple[str, list[tuple[GatewayGroup, int]]]:
    """The tenant's name and its groups, with how many gateways each holds."""
    tenant_id, tenant_name = tenant_of(session, principal, tenant, Action.GATEWAY_LIST)
    counts = dict(session.execute(
        select(Gateway.group_id, func.count()).where(Gateway.tenant_id == tenant_id,
                                                     Gateway.group_id.is_not(None))
        .group_by(Gateway.group_id)).tuples().all())
    groups = session.execute(select(GatewayGroup).where(GatewayGroup.tenant_id == tenant_id)
                             .order_by(GatewayGroup.name)).scalars()
    return tenant_name, [(g, int(counts.get(g.id, 0))) for g in groups]


def describe(group: GatewayGroup, tenant: str, gateways: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": group.name, "tenant": tenant, "ref": f"{tenant}/{group.name}",
        "channel": group.channel, "pinned_version": group.pinned_version,
        "window": group.window, "auto_update": group.auto_update}
    if gateways is not None:
        body["gateways"] = gateways
    return body
