"""Which apps a gateway group runs, and which interfaces each is granted.

An operator of the group's tenant assigns ``publisher/app`` at a version with a
set of granted interfaces; a gateway in the group is told to run exactly the
assigned apps. An interface the app's manifest asks for but the operator did
not grant is withheld on the gateway (and said so).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import InputError, NotFound
from edgeward.server.db.models import AppAssignment, Gateway, GatewayGroup
from edgeward.server.services import appstatus, audit, groups
from edgeward.server.services.authz import Action, Principal
from edgeward.trust.appmanifest import INTERFACES
from edgeward.trust.targets import NAME, VERSION


def describe(row: AppAssignment) -> dict[str, Any]:
    return {"publisher": row.publisher, "name": row.name, "version": row.version,
            "grants": list(row.grants)}


def check_grants(grants: list[str]) -> list[str]:
    for grant in grants:
        interface = grant.partition(":")[0]
        if interface not in INTERFACES:
            raise InputError(f"unknown interface {interface!r} (known: {', '.join(INTERFACES)})")
    return sorted(set(grants))


def assign(session: Session, principal: Principal, group_name: str, publisher: str,
           name: str, version: str, grants: list[str], now: dt.datetime,
           tenant: str | None = None) -> AppAssignment:
    group = groups.find(session, principal, group_name, tenant)
    groups.tenant_of(session, principal, tenant, Action.GROUP_MANAGE)  # may manage it
    if not NAME.match(publisher) or not NAME.match(name) or not VERSION.match(version):
        raise InputError("publisher, app name or version is not valid")
    granted = check_grants(grants)
    row = session.execute(select(AppAssignment).where(
        AppAssignment.group_id == group.id, AppAssignment.name == name)).scalar_one_or_none()
    if row is None:
        row = AppAssignment(group_id=group.id, publisher=publisher, name=name,
                            version=version, grants=granted, created_at=now)
        session.add(row)
    else:
        row.publisher, row.version, row.grants = publisher, version, granted
    audit.record(session, group.tenant_id, principal.actor, "app.assign",
                 f"{group_name}/{name}", now, publisher=publisher, version=version,
                 grants=granted)
    return row


def unassign(session: Session, principal: Principal, group_name: str, name: str,
             now: dt.datetime, tenant: str | None = None) -> None:
    group = groups.find(session, principal, group_name, tenant)
    groups.tenant_of(session, principal, tenant, Action.GROUP_MANAGE)
    row = session.execute(select(AppAssignment).where(
        AppAssignment.group_id == group.id, AppAssignment.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"app {name} is not assigned to group {group_name}")
    session.delete(row)
    audit.record(session, group.tenant_id, principal.actor, "app.unassign",
                 f"{group_name}/{name}", now)


def listed(session: Session, principal: Principal, group_name: str,
           tenant: str | None = None) -> list[dict[str, Any]]:
    group = groups.find(session, principal, group_name, tenant)
    rows = session.execute(select(AppAssignment).where(AppAssignment.group_id == group.id)
                           .order_by(AppAssignment.name)).scalars()
    return [describe(r) for r in rows]


def for_gateway(session: Session, gateway: Gateway) -> list[dict[str, Any]]:
    """The apps this gateway should run (none without a group of its own tenant), each
    with the confinement mode set for it on this gateway (enforce unless complain)."""
    if gateway.group_id is None:
        return []
    group = session.get(GatewayGroup, gateway.group_id)
    if group is None or group.tenant_id != gateway.tenant_id:
        return []
    rows = session.execute(select(AppAssignment).where(AppAssignment.group_id == group.id)
                           .order_by(AppAssignment.name)).scalars()
    modes = appstatus.modes_of(session, gateway)
    return [{**describe(r), "mode": modes.get(r.name, appstatus.ENFORCE)} for r in rows]
