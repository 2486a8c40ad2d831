"""Remote attestation: a fresh nonce per quote, verified by the trust core.

The verdict (attested or failed, and why) is recorded on the gateway, not
raised: a failed attestation is a fact the fleet must keep, not an error that
rolls back. A nonce is good for one quote, from one gateway, for minutes.
"""

from __future__ import annotations

import datetime as dt
import secrets

from cryptography import x509
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from edgeward.errors import AttestationError, Error
from edgeward.server.db.models import Gateway, Nonce
from edgeward.server.services import audit
from edgeward.server.services.registry import Trust, aware
from edgeward.trust.quote import KnownGood, verify_quote

NONCE_TTL = dt.timedelta(minutes=5)


MAX_OUTSTANDING = 4


def issue_nonce(session: Session, gateway: Gateway, now: dt.datetime) -> str:
    session.execute(delete(Nonce).where(Nonce.gateway_id == gateway.id,
                                        Nonce.issued_at < now - NONCE_TTL))
    outstanding = list(session.execute(
        select(Nonce.id).where(Nonce.gateway_id == gateway.id)
        .order_by(Nonce.issued_at.desc(), Nonce.id.desc())).scalars())
    if len(outstanding) >= MAX_OUTSTANDING:
        session.execute(delete(Nonce).where(Nonce.id.in_(outstanding[MAX_OUTSTANDING - 1:])))
    nonce = secrets.token_hex(32)
    session.add(Nonce(gateway_id=gateway.id, nonce=nonce, issued_at=now))
    return nonce


def _take_nonce(session: Session, gateway: Gateway, nonce: str, now: dt.datetime) -> bytes:
    # Taken by one DELETE: of two concurrent quotes for one nonce, only one gets a row.
    issued = session.execute(
        delete(Nonce).where(Nonce.gateway_id == gateway.id, Nonce.nonce == nonce)
        .returning(Nonce.issued_at)
    ).scalars().all()
    if len(issued) != 1:
        raise AttestationError("unknown nonce: ask for a fresh one")
    if now - aware(issued[0]) > NONCE_TTL:
        raise AttestationError("the nonce expired: ask for a fresh one")
    return bytes.fromhex(nonce)


def submit(session: Session, trust: Trust, known_good: KnownGood, gateway: Gateway,
           cert: x509.Certificate, nonce: str, quote: bytes, now: dt.datetime) -> str:
    """Verify a quote; record and return the verdict ("attested" or "failed")."""
    try:
        expected = _take_nonce(session, gateway, nonce, now)
        verify_quote(quote, cert, list(trust.cas), expected, known_good, now)
    except Error as e:
        gateway.attestation, gateway.attestation_detail = "failed", e.message
        audit.record(session, gateway.tenant_id, f"gateway/{gateway.serial}",
                     "gateway.attestation-failed", gateway.serial, now, reason=e.message)
        return "failed"
    gateway.attestation, gateway.attestation_detail = "attested", ""
    gateway.attested_at = now
    return "attested"
