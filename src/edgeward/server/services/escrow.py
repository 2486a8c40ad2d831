"""Gateways' data-volume recovery keys, escrowed with the fleet server.

A gateway sends the recovery key it made at provisioning; the server keeps it under the
dedicated ``escrow`` envelope key, bound to the gateway. It belongs to the device, not
to whichever tenant holds it: escrowed while the gateway was still in the unassigned
pool, it stays fetchable after the platform hands the gateway to a tenant, with no
re-encryption on the way. Who may fetch it is decided at fetch time: an admin of the
tenant holding the gateway (for an unassigned one, the platform admin). Every fetch and
every refused attempt is audited, in the asker's tenant and the gateway's.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import NotFound
from edgeward.server.db.models import Gateway, RecoveryKey
from edgeward.server.services import audit, keystore, registry
from edgeward.server.services.authz import Action, Principal
from edgeward.trust import vault


def _binding(gateway: Gateway) -> bytes:
    return vault.recovery_binding(gateway.id, gateway.serial)


def escrow(session: Session, master: bytes, gateway: Gateway, recovery_key: bytes,
           now: dt.datetime) -> bool:
    """Keep the gateway's recovery key; False if that very key was already kept."""
    key = keystore.escrow_key(session, master, now)
    row = session.get(RecoveryKey, gateway.id, with_for_update=True)
    action = "recovery-key.escrow"
    if row is not None:
        if hmac.compare_digest(vault.decrypt(key, row.ciphertext, _binding(gateway)),
                               recovery_key):
            return False
        action = "recovery-key.replace"
    ciphertext = vault.encrypt(key, recovery_key, _binding(gateway))
    if row is None:
        session.add(RecoveryKey(gateway_id=gateway.id, ciphertext=ciphertext, escrowed_at=now))
    else:
        row.ciphertext, row.escrowed_at = ciphertext, now
    session.flush()
    audit.record(session, gateway.tenant_id, f"gateway/{gateway.serial}", action,
                 gateway.serial, now)
    return True


def fetch(session: Session, master: bytes, principal: Principal, serial: str,
          now: dt.datetime) -> dict[str, Any]:
    """The recovery key of a gateway the principal administers (audited)."""
    gateway = registry.find(session, principal, serial, Action.SECRET_REVEAL)
    row = session.get(RecoveryKey, gateway.id)
    if row is None:
        raise NotFound(f"gateway {serial} has escrowed no recovery key")
    value = vault.decrypt(keystore.key_of(session, master, keystore.ESCROW), row.ciphertext,
                          _binding(gateway))
    audit.record(session, gateway.tenant_id, principal.actor, "recovery-key.fetch", serial,
                 now)
    return {"gateway": serial, "recovery_key": value.decode(),
            "escrowed_at": registry.iso(row.escrowed_at)}


def record_refusal(session: Session, principal: Principal, action: str, serial: str,
                   target: str, reason: str, now: dt.datetime) -> None:
    """An operator refused a gateway's secret: in the asker's audit log, and in the log of
    the gateway's holder (who should know someone tried)."""
    audit.record(session, principal.tenant_id, principal.actor, action, target, now,
                 reason=reason)
    holder = session.execute(select(Gateway.tenant_id).where(Gateway.serial == serial)).first()
    if holder is not None and holder[0] != principal.tenant_id:
        audit.record(session, holder[0], principal.actor, action, target, now, reason=reason)
