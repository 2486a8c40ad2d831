"""What complain mode learnt an app needs, one profile per gateway and app.

A gateway running an app in complain mode watches what the confinement would have
refused and works out the smallest set of interfaces and egress rules that would
let the app run, and what no interface would allow. The latest profile replaces
the one before. Operators read it back as a manifest snippet the app's developer
can paste into ``app.toml``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import NotFound
from edgeward.server.db.models import AppProfile, Gateway
from edgeward.server.services import registry
from edgeward.server.services.appstatus import held
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.registry import iso


@dataclass(frozen=True)
class Learnt:
    """A profile as a gateway sends it (already validated)."""

    app: str
    version: str
    observed_from: float
    observed_to: float
    interfaces: list[str] = field(default_factory=list)
    egress: list[str] = field(default_factory=list)
    denied: list[dict[str, Any]] = field(default_factory=list)


def _when(seconds: float, now: dt.datetime) -> dt.datetime:
    return min(dt.datetime.fromtimestamp(seconds, dt.UTC), now)


def store(session: Session, gateway: Gateway, learnt: Learnt, now: dt.datetime) -> None:
    row = session.execute(select(AppProfile).where(
        AppProfile.gateway_id == gateway.id, AppProfile.app == learnt.app)
    ).scalar_one_or_none()
    if row is None:
        row = AppProfile(gateway_id=gateway.id, app=learnt.app)
        session.add(row)
    row.tenant_id, row.version = gateway.tenant_id, learnt.version
    row.interfaces = sorted(set(learnt.interfaces))
    row.egress = sorted(set(learnt.egress))
    row.denied = [dict(d) for d in learnt.denied]
    row.observed_from = _when(learnt.observed_from, now)
    row.observed_to = _when(learnt.observed_to, now)
    row.received_at = now


def manifest(interfaces: list[str], egress: list[str]) -> str:
    """The profile as ``app.toml`` lines (TOML basic strings are JSON strings here)."""
    plugs = ", ".join(json.dumps(p) for p in interfaces)
    allow = ", ".join(json.dumps(e) for e in egress)
    return f"plugs = [{plugs}]\n\n[egress]\nallow = [{allow}]\n"


def describe(row: AppProfile, serial: str) -> dict[str, Any]:
    return {"gateway": serial, "app": row.app, "version": row.version,
            "interfaces": list(row.interfaces), "egress": list(row.egress),
            "denied": list(row.denied), "observed_from": iso(row.observed_from),
            "observed_to": iso(row.observed_to), "received_at": iso(row.received_at),
            "manifest": manifest(list(row.interfaces), list(row.egress))}


def shown(session: Session, principal: Principal, serial: str, app: str) -> dict[str, Any]:
    gateway = registry.find(session, principal, serial, Action.GATEWAY_READ)
    row = session.execute(select(AppProfile).where(
        AppProfile.gateway_id == gateway.id, AppProfile.app == app,
        held(AppProfile.tenant_id, gateway))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no profile learnt for {app} on {serial} (put it in complain mode "
                       "on a test gateway and let it run)")
    return describe(row, serial)
