"""Apps on a gateway: their status as the gateway reports it, and the confinement mode
operators set for each.

A gateway reports all its apps at once; the report replaces what it said before.
The mode of an app on a gateway is ``enforce`` unless a tenant admin put it in
``complain`` mode, where the gateway logs what the confinement would refuse instead
of refusing it (and learns the app's profile). Complain mode opens an app's sandbox,
so it is for test gateways only: setting it needs an explicit acknowledgement, and
every change is audited. The desired state carries each app's mode.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from edgeward.errors import InputError
from edgeward.server.db.models import AppMode, AppProfile, Gateway, GatewayApp
from edgeward.server.services import audit, registry
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.registry import iso

MODES = ("enforce", "complain")
STATES = ("running", "stopped", "starting", "backoff", "crash-loop", "failed", "installed")
ENFORCE = "enforce"


@dataclass(frozen=True)
class Reported:
    """One app as a gateway reports it (already validated)."""

    name: str
    version: str
    publisher: str
    state: str
    mode: str = ENFORCE
    granted: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    restarts: int = 0
    since: float | None = None


def report(session: Session, gateway: Gateway, apps: Sequence[Reported],
           now: dt.datetime) -> None:
    """Replace the gateway's app status rows with this report."""
    session.execute(delete(GatewayApp).where(GatewayApp.gateway_id == gateway.id))
    for app in apps:
        since = None if app.since is None else min(
            dt.datetime.fromtimestamp(app.since, dt.UTC), now)
        session.add(GatewayApp(
            tenant_id=gateway.tenant_id, gateway_id=gateway.id, name=app.name,
            version=app.version, publisher=app.publisher, state=app.state, mode=app.mode,
            granted=sorted(set(app.granted)), withheld=sorted(set(app.withheld)),
            restarts=app.restarts, since=since, reported_at=now))


def held(column: Any, gateway: Gateway) -> Any:
    """Rows written while the gateway's current tenant held it."""
    return column.is_(None) if gateway.tenant_id is None else column == gateway.tenant_id


def modes_of(session: Session, gateway: Gateway) -> dict[str, str]:
    """The modes operators set for the gateway's apps (an app not named: enforce)."""
    rows = session.execute(select(AppMode.app, AppMode.mode).where(
        AppMode.gateway_id == gateway.id, held(AppMode.tenant_id, gateway))).all()
    return {app: mode for app, mode in rows}


def describe(row: GatewayApp | None, name: str, mode: str, profile: bool) -> dict[str, Any]:
    """An app's status; ``row`` None for an app with a mode set but not reported yet."""
    return {"name": name, "version": row.version if row else None,
            "publisher": row.publisher if row else None, "state": row.state if row else None,
            "mode": row.mode if row else None, "desired_mode": mode,
            "granted": list(row.granted) if row else [],
            "withheld": list(row.withheld) if row else [],
            "restarts": row.restarts if row else 0,
            "since": iso(row.since) if row else None,
            "reported_at": iso(row.reported_at) if row else None, "profile": profile}


def of_gateway(session: Session, gateway: Gateway) -> list[dict[str, Any]]:
    """The gateway's apps as reported, with the mode set for each and whether complain
    mode learnt a profile; then apps put in complain mode that it has not reported."""
    rows = {r.name: r for r in session.execute(select(GatewayApp).where(
        GatewayApp.gateway_id == gateway.id, held(GatewayApp.tenant_id, gateway))
        .order_by(GatewayApp.name)).scalars()}
    modes = modes_of(session, gateway)
    profiles = set(session.execute(select(AppProfile.app).where(
        AppProfile.gateway_id == gateway.id, held(AppProfile.tenant_id, gateway))).scalars())
    unreported = sorted(a for a, m in modes.items() if a not in rows and m != ENFORCE)
    return ([describe(r, n, modes.get(n, ENFORCE), n in profiles) for n, r in rows.items()]
            + [describe(None, n, modes[n], n in profiles) for n in unreported])


def listed(session: Session, principal: Principal, serial: str) -> list[dict[str, Any]]:
    return of_gateway(session, registry.find(session, principal, serial, Action.GATEWAY_READ))


def set_mode(session: Session, principal: Principal, serial: str, app: str, mode: str,
             test_gateway: bool, now: dt.datetime) -> dict[str, Any]:
    """A tenant admin sets an app's mode on one gateway (complain: on a test gateway)."""
    gateway = registry.find(session, principal, serial, Action.APP_MODE)
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: use enforce or complain")
    if mode == "complain" and not test_gateway:
        raise InputError(
            f"complain mode turns {app}'s confinement on {serial} into logging: what it "
            "would refuse is let through and recorded; use it on a test gateway only, and "
            'say so with "test_gateway": true (--test-gateway)')
    row = session.execute(select(AppMode).where(
        AppMode.gateway_id == gateway.id, AppMode.app == app)).scalar_one_or_none()
    previous = ENFORCE
    if row is None:
        row = AppMode(gateway_id=gateway.id, app=app)
        session.add(row)
    elif row.tenant_id == gateway.tenant_id:
        previous = row.mode
    row.tenant_id, row.mode, row.set_by, row.set_at = (gateway.tenant_id, mode,
                                                       principal.actor, now)
    audit.record(session, gateway.tenant_id, principal.actor, "app.mode", f"{serial}/{app}",
                 now, mode=mode, previous=previous, test_gateway=test_gateway)
    return {"gateway": serial, "app": app, "mode": mode, "previous": previous,
            "set_by": principal.actor, "set_at": iso(now)}
