"""Per-device credentials: made on one gateway (a password for the customer's own MQTT
broker, say), reported to the server, revealed to the tenant's admins.

Each is the gateway's own (one row per gateway, app and name; never handed to another
gateway), stored only encrypted under the envelope key of the tenant holding the gateway
when it reported it (the platform tenant's while it has none), bound to that owner, the
gateway, the app and the name. Rows keep the tenant they were written for: a gateway
handed to another tenant takes none of its credentials along until it reports them
again. Reporting the same value again changes nothing; another value replaces it,
audited. Listings carry names and times; a reveal is audited.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import NotFound
from edgeward.server.db.models import DeviceCredential, Gateway
from edgeward.server.services import audit, keystore, registry
from edgeward.server.services.appstatus import held
from edgeward.server.services.authz import Action, Principal
from edgeward.server.services.tenants import check_name
from edgeward.trust import vault

Outcome = Literal["stored", "unchanged", "replaced"]


def _binding(owner: str, gateway: Gateway, app: str, name: str) -> bytes:
    return vault.credential_binding(owner, gateway.id, gateway.serial, app, name)


def _find(session: Session, gateway: Gateway, app: str, name: str, lock: bool = False
          ) -> DeviceCredential | None:
    query = select(DeviceCredential).where(DeviceCredential.gateway_id == gateway.id,
                                           DeviceCredential.app == app,
                                           DeviceCredential.name == name)
    return session.execute(query.with_for_update() if lock else query).scalar_one_or_none()


def report(session: Session, master: bytes, gateway: Gateway, app: str, name: str,
           value: bytes, now: dt.datetime) -> Outcome:
    """Keep a credential the gateway made: "stored", "unchanged" or "replaced"."""
    check_name("app", app)
    check_name("credential", name)
    tenant_id = gateway.tenant_id or keystore.platform_tenant(session)
    key = keystore.tenant_key(session, master, tenant_id, now)
    owner = keystore.tenant_owner(tenant_id)
    row = _find(session, gateway, app, name, lock=True)
    outcome: Outcome = "stored"
    if row is not None and row.tenant_id == gateway.tenant_id:
        old = vault.decrypt(keystore.key_of(session, master, row.owner), row.ciphertext,
                            _binding(row.owner, gateway, app, name))
        if hmac.compare_digest(old, value):
            return "unchanged"
        outcome = "replaced"
    ciphertext = vault.encrypt(key, value, _binding(owner, gateway, app, name))
    if row is None:
        row = DeviceCredential(gateway_id=gateway.id, app=app, name=name)
        session.add(row)
    row.tenant_id, row.owner, row.ciphertext = gateway.tenant_id, owner, ciphertext
    row.reported_at = now
    session.flush()
    audit.record(session, gateway.tenant_id, f"gateway/{gateway.serial}",
                 f"credential.{'replace' if outcome == 'replaced' else 'report'}",
                 f"{gateway.serial}/{app}/{name}", now)
    return outcome


def listed(session: Session, principal: Principal, serial: str) -> list[dict[str, Any]]:
    """The gateway's credentials reported while its tenant held it: names only."""
    gateway = registry.find(session, principal, serial, Action.SECRET_READ)
    rows = session.execute(select(DeviceCredential).where(
        DeviceCredential.gateway_id == gateway.id, held(DeviceCredential.tenant_id, gateway))
        .order_by(DeviceCredential.app, DeviceCredential.name)).scalars()
    return [{"app": r.app, "name": r.name, "reported_at": registry.iso(r.reported_at)}
            for r in rows]


def reveal(session: Session, master: bytes, principal: Principal, serial: str, app: str,
           name: str, now: dt.datetime) -> dict[str, Any]:
    """One credential's value, to an admin of the tenant holding the gateway (audited)."""
    gateway = registry.find(session, principal, serial, Action.SECRET_REVEAL)
    row = _find(session, gateway, check_name("app", app), check_name("credential", name))
    if row is None or row.tenant_id != gateway.tenant_id:
        raise NotFound(f"gateway {serial} reported no credential {app}/{name}")
    value = vault.decrypt(keystore.key_of(session, master, row.owner), row.ciphertext,
                          _binding(row.owner, gateway, app, name))
    audit.record(session, gateway.tenant_id, principal.actor, "credential.reveal",
                 f"{serial}/{app}/{name}", now)
    return {"gateway": serial, "app": app, "name": name, "value": value.decode(),
            "reported_at": registry.iso(row.reported_at)}
