"""A tenant's secrets for its apps, set by admins and delivered sealed to its gateways.

A secret is named by app and name, for every gateway of the tenant or for one gateway
group (which then overrides the tenant-wide value of the same app and name on that
group's gateways). Setting it makes a new version (monotonic, also across a revocation);
revoking erases the value and it is delivered no more. Values are stored only encrypted
under the tenant's envelope key, bound to tenant, app, group, name and version; listings
and the audit log carry names and versions, never a value.

A gateway gets its secrets only while its last attestation is good, each sealed (HPKE)
to the public key of its own certificate for exactly that app, name and version.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from cryptography import x509
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from edgeward.errors import Conflict, InputError, NotFound
from edgeward.server.db.models import AuditEvent, Gateway, GatewayGroup, TenantSecret
from edgeward.server.db.monitoring import GatewayMonitor
from edgeward.server.services import alerts, audit, groups, keystore, registry
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.tenants import check_name
from edgeward.trust import certs, sealing, vault
from edgeward.trust.secretbox import secret_info

MAX_VALUE = 64 * 1024  # bytes of a secret's value
MAX_SECRETS = 256  # current secrets per tenant: a gateway receives them all at once
REFUSED = "gateway.secrets-refused"


def check_value(value: bytes) -> bytes:
    if not value:
        raise InputError("a secret's value is empty")
    if len(value) > MAX_VALUE:
        raise InputError(f"a secret's value is {len(value)} bytes: at most {MAX_VALUE}")
    return value


def _group(session: Session, principal: Principal, name: str | None
           ) -> GatewayGroup | None:
    return None if name is None else groups.find(session, principal, check_name("group", name))


def _current(session: Session, tenant_id: int, app: str, scope: str, name: str,
             lock: bool = False) -> TenantSecret | None:
    query = select(TenantSecret).where(
        TenantSecret.tenant_id == tenant_id, TenantSecret.app == app,
        TenantSecret.scope == scope, TenantSecret.name == name)
    return session.execute(query.with_for_update() if lock else query).scalar_one_or_none()


def describe(row: TenantSecret) -> dict[str, Any]:
    return {"app": row.app, "name": row.name, "group": row.scope or None,
            "version": row.version, "updated_at": registry.iso(row.updated_at)}


def put(session: Session, principal: Principal, master: bytes, app: str, name: str,
        group: str | None, value: bytes, now: dt.datetime) -> TenantSecret:
    """Set a secret of the principal's tenant: a new version of it."""
    authorize(principal, Action.SECRET_MANAGE)
    check_name("app", app)
    check_name("secret", name)
    check_value(value)
    found = _group(session, principal, group)
    scope = found.name if found else ""
    key = keystore.tenant_key(session, master, principal.tenant_id, now)
    row = _current(session, principal.tenant_id, app, scope, name, lock=True)
    if row is None or row.revoked_at is not None:
        held = session.execute(select(func.count()).select_from(TenantSecret).where(
            TenantSecret.tenant_id == principal.tenant_id,
            TenantSecret.revoked_at.is_(None))).scalar_one()
        if held >= MAX_SECRETS:
            raise Conflict(f"tenant {principal.tenant} holds {held} secrets, the most it "
                           "may: revoke some first")
    version = 1 if row is None else row.version + 1
    ciphertext = vault.encrypt(key, value, vault.secret_binding(
        principal.tenant_id, app, scope or None, name, version))
    if row is None:
        row = TenantSecret(tenant_id=principal.tenant_id, app=app, scope=scope, name=name)
        session.add(row)
    row.version, row.ciphertext, row.group_id = version, ciphertext, found.id if found else None
    row.updated_at, row.updated_by, row.revoked_at = now, principal.actor, None
    session.flush()
    audit.record(session, principal.tenant_id, principal.actor, "secret.set", f"{app}/{name}",
                 now, group=scope or None, version=row.version)
    return row


def revoke(session: Session, principal: Principal, app: str, name: str, group: str | None,
           now: dt.datetime) -> TenantSecret:
    """Revoke a secret: its value is erased and no gateway gets it any more."""
    authorize(principal, Action.SECRET_MANAGE)
    check_name("app", app)
    check_name("secret", name)
    found = _group(session, principal, group)
    row = _current(session, principal.tenant_id, app, found.name if found else "", name,
                   lock=True)
    if row is None or row.revoked_at is not None:
        where = f" for group {group}" if group else ""
        raise NotFound(f"no secret {app}/{name}{where} in tenant {principal.tenant}")
    row.ciphertext, row.revoked_at, row.updated_by = b"", now, principal.actor
    audit.record(session, principal.tenant_id, principal.actor, "secret.revoke",
                 f"{app}/{name}", now, group=row.scope or None, version=row.version)
    return row


def listed(session: Session, principal: Principal, app: str | None = None
           ) -> list[dict[str, Any]]:
    """The tenant's current secrets: names, groups, versions; never a value."""
    authorize(principal, Action.SECRET_READ)
    query = select(TenantSecret).where(TenantSecret.tenant_id == principal.tenant_id,
                                       TenantSecret.revoked_at.is_(None))
    if app is not None:
        query = query.where(TenantSecret.app == check_name("app", app))
    rows = session.execute(query.order_by(TenantSecret.app, TenantSecret.name,
                                          TenantSecret.scope)).scalars()
    return [describe(r) for r in rows]


# -- delivery to gateways ------------------------------------------------------------------


def refusal(session: Session, gateway: Gateway, now: dt.datetime, what: str = "its secrets",
            action: str = REFUSED) -> str | None:
    """Why ``gateway`` may not have ``what`` now (recorded as ``action``, once per quiet
    window, and alerted), or None while its last attestation is good (and not stale) and
    it is not quarantined."""
    status = registry.attestation_status(gateway, now)
    monitor = session.get(GatewayMonitor, gateway.id)
    held = monitor is not None and monitor.quarantined
    if status == "attested" and not held:
        return None
    reason = (f"gateway {gateway.serial} is refused {what}: it is quarantined (only its "
              "update and monitoring channels stay open)" if held else
              f"gateway {gateway.serial} is refused {what}: its last attestation is "
              f"{status}{': ' + gateway.attestation_detail if status == 'failed' else ''}; "
              "attest again")
    recent = session.execute(select(AuditEvent.id).where(
        AuditEvent.action == action, AuditEvent.target == gateway.serial,
        AuditEvent.at >= now - alerts.QUIET).limit(1)).first()
    if recent is None:  # an agent asking every minute leaves one record, not a flood
        audit.record(session, gateway.tenant_id, f"gateway/{gateway.serial}", action,
                     gateway.serial, now, attestation=status)
    if not held:  # an operator's quarantine is no news to the operator
        alerts.raise_alert(session, gateway, "secrets-refused", reason, now)
    return reason


def current_for(session: Session, gateway: Gateway) -> list[TenantSecret]:
    """The gateway's tenant's secrets for it: a group's value over the tenant-wide one."""
    if gateway.tenant_id is None:
        return []
    group = (TenantSecret.group_id.is_(None) if gateway.group_id is None else
             or_(TenantSecret.group_id.is_(None), TenantSecret.group_id == gateway.group_id))
    chosen: dict[tuple[str, str], TenantSecret] = {}
    for row in session.execute(select(TenantSecret).where(
            TenantSecret.tenant_id == gateway.tenant_id, TenantSecret.revoked_at.is_(None),
            group)).scalars():
        known = chosen.get((row.app, row.name))
        if known is None or (row.scope and not known.scope):
            chosen[(row.app, row.name)] = row
    return [chosen[k] for k in sorted(chosen)]


def stamp(session: Session, gateway: Gateway) -> str:
    """A word for what the gateway would receive (app, name, group and version of each):
    it changes with every set, rotation, revocation or change of group or tenant, so the
    agent asks for its secrets when it does (the heartbeat carries it). No value in it."""
    digest = hashlib.sha256(b"edgeward secrets stamp v1")
    for row in current_for(session, gateway):
        digest.update(f"\x00{row.app}\x00{row.name}\x00{row.scope}\x00{row.version}".encode())
    return digest.hexdigest()[:32]


def deliver(session: Session, master: bytes, gateway: Gateway, cert: x509.Certificate,
            now: dt.datetime) -> list[dict[str, Any]]:
    """The gateway's secrets, each sealed to its certificate's key (call :func:`refusal`
    first)."""
    rows = current_for(session, gateway)
    if not rows:
        return []
    assert gateway.tenant_id is not None
    key = keystore.key_of(session, master, keystore.tenant_owner(gateway.tenant_id))
    recipient = certs.public_key_of(cert)
    delivered = []
    for row in rows:
        value = vault.decrypt(key, row.ciphertext, vault.secret_binding(
            row.tenant_id, row.app, row.scope or None, row.name, row.version))
        sealed = sealing.seal(recipient, value, secret_info(gateway.serial, row.app, row.name,
                                                             row.version))
        delivered.append({"app": row.app, "name": row.name, "version": row.version,
                          "sealed": base64.b64encode(sealed).decode()})
    return delivered
