"""The gateway registry: enrolment by factory certificate, heartbeats, revocation.

A gateway is known by the SHA-384 of its certificate. Enrolment needs the
manufacturing record its factory station signed, and the record must name
that very certificate; a second certificate for a known serial is refused
(a cloned or forged identity) and lands in the audit log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from edgeward.errors import AuthenticationError, Conflict, InputError, NotFound, PermissionDenied
from edgeward.factory.record import verify_record
from edgeward.server.db.models import Gateway, Tenant
from edgeward.server.services import alerts, audit
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.trust import certs

STALE_AFTER = dt.timedelta(hours=25)


@dataclass(frozen=True)
class Trust:
    """What the server trusts: manufacturer CAs (gateways and factory stations)."""

    cas: tuple[x509.Certificate, ...]


def identify(session: Session, trust: Trust, cert_pem: str | None, now: dt.datetime
             ) -> tuple[x509.Certificate, Gateway | None]:
    """The presented certificate, verified, and the enrolled gateway it belongs to."""
    if cert_pem is None:
        raise AuthenticationError("this endpoint needs the gateway's factory certificate")
    cert = certs.load_cert(cert_pem.encode(), "client certificate")
    certs.verify_device_cert(cert, list(trust.cas), now)
    gateway = session.execute(
        select(Gateway).where(Gateway.cert_sha384 == certs.fingerprint(cert))
    ).scalar_one_or_none()
    if gateway is not None and gateway.status == "revoked":
        raise PermissionDenied(f"gateway {gateway.serial} is revoked")
    return cert, gateway


def require_enrolled(gateway: Gateway | None) -> Gateway:
    if gateway is None:
        raise AuthenticationError("unknown certificate: enrol this gateway first")
    return gateway


def enrol(session: Session, trust: Trust, cert: x509.Certificate, gateway: Gateway | None,
          record: str, station_pem: str, now: dt.datetime) -> Gateway:
    if gateway is not None:
        return gateway  # enrolment is idempotent for the same certificate
    station = certs.load_cert(station_pem.encode(), "station certificate")
    issuer = next((ca for ca in trust.cas if ca.subject == station.issuer), None)
    if issuer is None:
        raise AuthenticationError("the station certificate is not from a trusted manufacturer")
    fields = verify_record(record.encode(), station, issuer, now)
    serial, fingerprint = certs.serial_of(cert), certs.fingerprint(cert)
    if fields["serial"] != serial or fields["certificate_sha384"] != fingerprint:
        raise InputError("the manufacturing record is for another gateway or certificate")
    known = session.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one_or_none()
    if known is not None:
        raise Conflict(f"serial {serial} is enrolled with another certificate")
    gateway = Gateway(serial=serial, model=str(fields["model"]), cert_sha384=fingerprint,
                      cert_pem=certs.cert_pem(cert).decode(), record=record, status="enrolled",
                      attestation="unknown", attestation_detail="", slot="", versions={},
                      enrolled_at=now, last_seen_at=now)
    session.add(gateway)
    session.flush()
    audit.record(session, None, f"gateway/{serial}", "gateway.enrol", serial, now)
    return gateway


def record_conflict(session: Session, cert: x509.Certificate, now: dt.datetime) -> None:
    """A second certificate for an enrolled serial: audit it and alert whoever holds it."""
    serial, fingerprint = certs.serial_of(cert), certs.fingerprint(cert)
    known = session.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one_or_none()
    if known is None:
        return
    audit.record(session, known.tenant_id, f"gateway/{serial}", "gateway.identity-conflict",
                 serial, now, presented=fingerprint, enrolled=known.cert_sha384)
    alerts.raise_alert(session, known, "identity-conflict",
                       f"a second certificate ({fingerprint[:16]}…) tried to enrol as {serial}",
                       now)


def heartbeat(session: Session, gateway: Gateway, slot: str, versions: dict[str, str],
              boot_id: str, now: dt.datetime) -> None:
    """Record a check-in; an older boot coming back after a newer one is a clone.

    A genuine gateway's boot id changes only forward (one per power cycle);
    two devices sharing one identity make the ids alternate.
    """
    if boot_id != gateway.boot_id:
        if gateway.previous_boot_id and boot_id == gateway.previous_boot_id:
            raised = alerts.raise_alert(
                session, gateway, "cloned-identity",
                f"certificate of {gateway.serial} is in use by two running devices "
                "(their check-ins alternate)", now, severity="high", source="identity")
            if raised:
                audit.record(session, gateway.tenant_id, f"gateway/{gateway.serial}",
                             "gateway.clone-suspected", gateway.serial, now)
        gateway.previous_boot_id, gateway.boot_id = gateway.boot_id, boot_id
    gateway.last_seen_at = now
    gateway.slot = slot
    gateway.versions = dict(versions)


def attestation_status(gateway: Gateway, now: dt.datetime) -> str:
    if gateway.attestation == "attested" and gateway.attested_at is not None and (
            now - aware(gateway.attested_at) > STALE_AFTER):
        return "stale"
    return gateway.attestation


def aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def describe(gateway: Gateway, now: dt.datetime) -> dict[str, Any]:
    return {
        "serial": gateway.serial, "model": gateway.model, "status": gateway.status,
        "attestation": attestation_status(gateway, now),
        "attestation_detail": gateway.attestation_detail,
        "attested_at": iso(gateway.attested_at), "last_seen_at": iso(gateway.last_seen_at),
        "enrolled_at": iso(gateway.enrolled_at), "slot": gateway.slot,
        "versions": gateway.versions, "certificate_sha384": gateway.cert_sha384,
    }


def iso(when: dt.datetime | None) -> str | None:
    return aware(when).isoformat() if when else None


def _in_scope(principal: Principal) -> ColumnElement[bool]:
    scope = principal.scope()
    return Gateway.tenant_id.is_(None) if scope is None else Gateway.tenant_id == scope


def visible(session: Session, principal: Principal) -> list[Gateway]:
    """The tenant's gateways (for a platform admin: the unassigned pool)."""
    authorize(principal, Action.GATEWAY_LIST)
    return list(session.execute(
        select(Gateway).where(_in_scope(principal)).order_by(Gateway.serial)).scalars())


def find(session: Session, principal: Principal, serial: str, action: Action) -> Gateway:
    """A gateway in the principal's scope; another tenant's is simply not found."""
    authorize(principal, action)
    gateway = session.execute(
        select(Gateway).where(Gateway.serial == serial, _in_scope(principal))
    ).scalar_one_or_none()
    if gateway is None:
        raise NotFound(f"no gateway {serial} in tenant {principal.tenant}")
    return gateway


def revoke(session: Session, principal: Principal, serial: str, now: dt.datetime) -> Gateway:
    gateway = find(session, principal, serial, Action.GATEWAY_REVOKE)
    gateway.status = "revoked"
    audit.record(session, principal.tenant_id, principal.actor, "gateway.revoke", serial, now)
    return gateway


def assign(session: Session, principal: Principal, serial: str, tenant: str,
           now: dt.datetime) -> Gateway:
    """The platform hands an enrolled gateway to a tenant."""
    authorize(principal, Action.TENANT_MANAGE)
    target = session.execute(select(Tenant).where(Tenant.name == tenant)).scalar_one_or_none()
    gateway = session.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one_or_none()
    if target is None or gateway is None:
        raise NotFound(f"no {'tenant ' + tenant if target is None else 'gateway ' + serial}")
    previous = gateway.tenant_id
    gateway.tenant_id = target.id
    if previous != target.id:
        gateway.group_id = None  # a group is the old tenant's: it does not follow
    alerts.follow(session, gateway)  # its open alerts go with it
    audit.record(session, target.id, principal.actor, "gateway.assign", serial, now)
    audit.record(session, principal.tenant_id, principal.actor, "gateway.assign", serial, now,
                 tenant=tenant)
    if previous is not None and previous != target.id:
        audit.record(session, previous, principal.actor, "gateway.reassign", serial, now,
                     tenant=tenant)
    return gateway
