"""Revoked gateways that still knock: the server refuses a revoked gateway's certificate
(:func:`.registry.identify`), and notes here that it was presented, so that the fleet
audit can say a revoked certificate is still in use (and an alert says it at once).

The refusal happens in the request's own transaction, which is rolled back; the sighting
is written before it, in a transaction of its own, when the request's credentials are
first looked at. The certificate already passed the TLS handshake (it chains to a trusted
manufacturer CA and the client holds its key); it is matched to a gateway by its SHA-384.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import Error
from edgeward.server.db.models import Gateway
from edgeward.server.services import alerts
from edgeward.trust import certs


class Revoked:
    """The revoked certificates' fingerprints, read again every ``ttl`` seconds: every
    gateway request is checked against it, and only a match costs a transaction (a
    revocation is noticed within ``ttl``; the route refuses it at once regardless)."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl, self.loaded, self.fingerprints = ttl, -1e9, frozenset[str]()
        self.lock = threading.Lock()

    def forget(self) -> None:
        with self.lock:
            self.loaded = -1e9

    def contains(self, load: Callable[[], frozenset[str]], fingerprint: str) -> bool:
        with self.lock:
            if time.monotonic() - self.loaded > self.ttl:
                self.fingerprints, self.loaded = load(), time.monotonic()
            return fingerprint in self.fingerprints


def revoked_fingerprints(session: Session) -> frozenset[str]:
    return frozenset(session.execute(select(Gateway.cert_sha384).where(
        Gateway.status == "revoked")).scalars())


def fingerprint_of(cert_pem: str) -> str | None:
    try:
        return certs.fingerprint(certs.load_cert(cert_pem.encode(), "certificate"))
    except Error:
        return None  # the route refuses it with the reason


def sighted(session: Session, cert_pem: str, now: dt.datetime) -> bool:
    """Note that a revoked gateway presented ``cert_pem``; whether it was one."""
    try:
        fingerprint = certs.fingerprint(certs.load_cert(cert_pem.encode(), "certificate"))
    except Error:
        return False  # the route refuses it with the reason
    gateway = session.execute(
        select(Gateway).where(Gateway.cert_sha384 == fingerprint, Gateway.status == "revoked")
    ).scalar_one_or_none()
    if gateway is None:
        return False
    gateway.last_seen_at = now
    alerts.raise_alert(session, gateway, "revoked-seen",  # once per quiet window
                       f"the revoked certificate of {gateway.serial} was presented again",
                       now, severity="high", source="identity",
                       evidence={"certificate_sha384": fingerprint})
    return True
