"""Envelope keys in the database, each wrapped under the master key that stays outside it.

An owner's key is made on first use: ``tenant/<id>`` for a tenant's secrets and the
credentials its gateways report, ``escrow`` for gateways' recovery keys. The database
also keeps one check value derived from the master key, so a server started with
another master key is refused at start (:func:`check_master`). The crypto itself is
:mod:`edgeward.trust.vault`.

Two first uses at once both make a key; the second one's flush fails on the unique
owner, and the caller's transaction is retried (see ``api.deps.once_more``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import IntegrityError, KeyFileError, NotFound
from edgeward.server.db.models import EnvelopeKey, KeyCheck, Tenant
from edgeward.server.services.authz import PLATFORM_TENANT
from edgeward.trust import vault

ESCROW = "escrow"


def tenant_owner(tenant_id: int) -> str:
    return f"tenant/{tenant_id}"


def has_check(session: Session) -> bool:
    """Whether a master key was ever used with this database."""
    return session.execute(select(KeyCheck.id).limit(1)).first() is not None


def check_master(session: Session, master: bytes, now: dt.datetime) -> None:
    """Accept ``master`` if it is the database's (the first one given becomes it)."""
    row = session.execute(select(KeyCheck).order_by(KeyCheck.id).limit(1)).scalar_one_or_none()
    if row is None:
        if session.execute(select(EnvelopeKey.id).limit(1)).first() is not None:
            raise IntegrityError("the database holds envelope keys but no master key check: "
                                 "refusing to start rather than guess")
        session.add(KeyCheck(check_value=vault.key_check(master), created_at=now))
        return
    if not vault.matches(master, row.check_value):
        raise KeyFileError("the master key is not the one this database's secrets are "
                           "encrypted under: give the right one (--master-key FILE or "
                           "EDGEWARD_MASTER_KEY)")


def _row(session: Session, owner: str) -> EnvelopeKey | None:
    return session.execute(
        select(EnvelopeKey).where(EnvelopeKey.owner == owner)).scalar_one_or_none()


def key_of(session: Session, master: bytes, owner: str) -> bytes:
    """An existing owner's envelope key, unwrapped."""
    row = _row(session, owner)
    if row is None:
        raise IntegrityError(f"the envelope key of {owner} is missing: the database was "
                             "altered")
    return vault.unwrap_key(master, row.wrapped, owner)


def ensure(session: Session, master: bytes, owner: str, tenant_id: int | None,
           now: dt.datetime) -> bytes:
    """The owner's envelope key, made (and wrapped, and stored) on first use."""
    row = _row(session, owner)
    if row is not None:
        return vault.unwrap_key(master, row.wrapped, owner)
    key = vault.new_key()
    session.add(EnvelopeKey(owner=owner, tenant_id=tenant_id,
                            wrapped=vault.wrap_key(master, key, owner), created_at=now))
    session.flush()
    return key


def tenant_key(session: Session, master: bytes, tenant_id: int, now: dt.datetime) -> bytes:
    return ensure(session, master, tenant_owner(tenant_id), tenant_id, now)


def escrow_key(session: Session, master: bytes, now: dt.datetime) -> bytes:
    return ensure(session, master, ESCROW, None, now)


def platform_tenant(session: Session) -> int:
    found = session.execute(
        select(Tenant.id).where(Tenant.name == PLATFORM_TENANT)).scalar_one_or_none()
    if found is None:
        raise NotFound("no platform tenant")
    return found
