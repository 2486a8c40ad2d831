"""The fleet audits, as pure functions of facts and a reference time: certificates made
here with cryptography (expired, expiring, one key for two gateways), releases behind,
attestation gone stale, revoked identities still presented."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeward.server.services import fleetaudit
from edgeward.server.services.desired import Candidate, Gate, Policy
from edgeward.server.services.fleetaudit import AlertFacts, Finding, GatewayFacts
from edgeward.server.services.stages import Stage

NOW = dt.datetime(2031, 5, 4, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
ISSUER = ec.generate_private_key(ec.SECP256R1())


def cert(serial: str, not_after: dt.datetime,
         key: ec.EllipticCurvePrivateKey | None = None) -> str:
    """A device certificate for ``serial`` (a fresh key unless one is given)."""
    public = (key or ec.generate_private_key(ec.SECP256R1())).public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
    built = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")]))
             .public_key(public).serial_number(x509.random_serial_number())
             .not_valid_before(not_after - dt.timedelta(days=3650)).not_valid_after(not_after)
             .sign(ISSUER, hashes.SHA256()))
    return built.public_bytes(serialization.Encoding.PEM).decode()


def gateway(serial: str = "gw-1", gid: int = 1, **changes: object) -> GatewayFacts:
    """A healthy gateway: enrolled a month ago, seen a minute ago, attested an hour ago,
    certificate good for years, running 1.1 (security version 2) on stable."""
    facts = GatewayFacts(
        id=gid, serial=serial, model="ew-gw1", tenant_id=7, status="enrolled",
        cert_sha384=f"{gid:096x}", cert_pem=cert(serial, NOW + 3650 * DAY),
        attestation="attested", attestation_detail="", attested_at=NOW - dt.timedelta(hours=1),
        enrolled_at=NOW - 30 * DAY, last_seen_at=NOW - dt.timedelta(minutes=1),
        versions={"rootfs": "1.1", "kernel": "1.1"})
    return replace(facts, **changes)  # type: ignore[arg-type]


def checks(found: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.gateway, f.check, f.severity) for f in found]


def test_a_healthy_fleet_has_no_findings() -> None:
    fleet = [gateway(), gateway("gw-2", 2)]
    releases = {"ew-gw1": [Candidate("1.0", "stable", 1, 1), Candidate("1.1", "stable", 2, 2)]}
    assert fleetaudit.audit(fleet, fleet, [], releases, {}, NOW) == []


# -- certificates -----------------------------------------------------------------------


def test_certificates_expired_and_expiring() -> None:
    fleet = [gateway("gw-old", 1, cert_pem=cert("gw-old", NOW - DAY)),
             gateway("gw-soon", 2, cert_pem=cert("gw-soon", NOW + 10 * DAY)),
             gateway("gw-edge", 3, cert_pem=cert("gw-edge", NOW + 30 * DAY)),
             gateway("gw-later", 4, cert_pem=cert("gw-later", NOW + 31 * DAY)),
             gateway("gw-junk", 5, cert_pem="-----BEGIN CERTIFICATE-----\nnope\n"),
             gateway("gw-gone", 6, cert_pem=cert("gw-gone", NOW - DAY), status="revoked")]
    found = fleetaudit.certificates(fleet, NOW)
    assert checks(found) == [("gw-old", "certificate.expired", "high"),
                             ("gw-soon", "certificate.expiring", "medium"),
                             ("gw-edge", "certificate.expiring", "medium"),
                             ("gw-junk", "certificate.unreadable", "medium")]
    assert "2031-05-03" in found[0].detail and "refuses" in found[0].detail
    assert "10.0 days" in found[1].detail
    assert "edgeward fleet revoke gw-old" in found[0].advice
    assert "edgeward factory provision" in found[1].advice
    assert checks(fleetaudit.certificates(fleet, NOW, expiring_within=60 * DAY))[3] == (
        "gw-later", "certificate.expiring", "medium")
    assert checks(fleetaudit.certificates(fleet, NOW - 25 * DAY)) == [  # 25 days earlier
        ("gw-old", "certificate.expiring", "medium"),
        ("gw-junk", "certificate.unreadable", "medium")]


# -- identity ---------------------------------------------------------------------------


def test_one_key_certified_for_two_gateways() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    a = gateway("gw-a", 1, cert_pem=cert("gw-a", NOW + 900 * DAY, key))
    b = gateway("gw-b", 2, cert_pem=cert("gw-b", NOW + 800 * DAY, key))  # another cert
    c = gateway("gw-c", 3)
    elsewhere = gateway("gw-x", 4, tenant_id=8, cert_pem=cert("gw-x", NOW + DAY * 99, key))
    everyone = [a, b, c, elsewhere]
    found = fleetaudit.identity([a, b, c], everyone, [])
    assert checks(found) == [("gw-a", "identity.shared-key", "high"),
                             ("gw-b", "identity.shared-key", "high")]
    assert "gw-b" in found[0].detail and "1 gateway(s) of another tenant" in found[0].detail
    assert "gw-x" not in found[0].detail + found[0].advice  # another tenant's serial
    assert "edgeward fleet revoke gw-a" in found[0].advice
    key_hash = fleetaudit.certificate(a.cert_pem).key_sha256
    assert key_hash and re.fullmatch("[0-9a-f]{64}", key_hash)
    assert key_hash[:16] in found[0].detail
    # the other tenant's gateway, audited for its own tenant, does not learn gw-a or gw-b
    (theirs,) = fleetaudit.identity([elsewhere], everyone, [])
    assert "2 gateway(s) of another tenant" in theirs.detail and "gw-a" not in theirs.detail
    assert fleetaudit.identity([c], [c], []) == []


def test_cloned_identity_alerts_become_findings() -> None:
    fleet = [gateway(), gateway("gw-2", 2), gateway("gw-3", 3, status="revoked")]
    alerts = [AlertFacts(1, "cloned-identity", NOW - DAY, "certificate of gw-1 is in use "
                         "by two running devices"),
              AlertFacts(1, "cloned-identity", NOW - 2 * DAY, "older"),
              AlertFacts(2, "identity-conflict", NOW - DAY, "a second certificate tried"),
              AlertFacts(2, "update-failed", NOW, "not an identity alert"),
              AlertFacts(3, "cloned-identity", NOW, "revoked already"),
              AlertFacts(9, "cloned-identity", NOW, "not one of these gateways")]
    found = fleetaudit.identity(fleet, fleet, alerts)
    assert checks(found) == [("gw-1", "identity.cloned", "high"),
                             ("gw-2", "identity.conflict", "high")]
    assert "two running devices" in found[0].detail  # the latest alert of the kind
    assert "edgeward fleet revoke gw-1" in found[0].advice
    assert "edgeward fleet audit" in found[1].advice


def test_a_revoked_certificate_presented_after_its_revocation() -> None:
    revoked_at = NOW - DAY
    fleet = [gateway("gw-knocks", 1, status="revoked", revoked_at=revoked_at,
                     last_seen_at=NOW - dt.timedelta(minutes=5)),
             gateway("gw-quiet", 2, status="revoked", revoked_at=revoked_at,
                     last_seen_at=revoked_at - DAY),
             gateway("gw-unknown", 3, status="revoked", revoked_at=None),
             gateway("gw-live", 4)]
    (found,) = fleetaudit.revoked_seen(fleet)
    assert (found.gateway, found.check, found.severity) == (
        "gw-knocks", "certificate.revoked-seen", "high")
    assert "2031-05-03 12:00 UTC" in found.detail and "2031-05-04 11:55 UTC" in found.detail
    # a revoked gateway is judged by nothing else
    assert fleetaudit.audit(fleet[1:3], fleet, [], {}, {}, NOW + 400 * DAY) == []


# -- patches ----------------------------------------------------------------------------


RELEASES = [Candidate("1.0", "stable", 1, 1), Candidate("1.1", "stable", 2, 2),
            Candidate("1.2", "stable", 2, 3), Candidate("1.3", "beta", 3, 4),
            Candidate("1.4", "stable", 3, 5)]


def behind(g: GatewayFacts, releases: list[Candidate] | None = None,
           gates: list[Gate] | None = None) -> list[Finding]:
    return fleetaudit.patches([g], {"ew-gw1": releases or RELEASES}, {"ew-gw1": gates or []})


def test_behind_by_a_security_version_is_a_finding() -> None:
    (found,) = behind(gateway())
    assert (found.check, found.severity) == ("patches.behind", "high")
    assert "runs 1.1 (security version 2)" in found.detail
    assert "1.4 on channel stable has security version 3" in found.detail
    assert "offered to it" in found.advice  # no rollout holds it back
    assert behind(gateway(versions={"rootfs": "1.4"})) == []  # up to date
    assert behind(gateway(versions={"rootfs": "9.9"})) == []  # unknown: nothing to compare
    assert behind(gateway(versions={})) == []
    newer_but_same = [Candidate("1.1", "stable", 2, 1), Candidate("1.2", "stable", 2, 2)]
    assert behind(gateway(), newer_but_same) == []  # behind, but not on security
    yanked = [*RELEASES[:4], Candidate("1.4", "stable", 3, 5, yanked=True)]
    assert behind(gateway(), yanked) == []  # 1.3 is beta: not for stable
    (on_beta,) = behind(gateway(policy=Policy(channel="beta")), yanked)
    assert "1.3 on channel beta" in on_beta.detail
    assert behind(gateway(status="revoked")) == []


def test_the_advice_says_what_holds_the_patch_back() -> None:
    pinned = Policy(pinned_version="1.1", group="hotels/lobby")
    (found,) = behind(gateway(policy=pinned))
    assert "edgeward fleet groups set lobby --unpin" in found.advice
    manual = Policy(auto_update=False, group="hotels/lobby")
    assert "edgeward fleet groups set lobby --auto" in behind(gateway(policy=manual))[0].advice
    stages = (Stage(groups=("hotels/pilot",)), Stage(percent=100))
    running = Gate(12, "1.4", "running", 0, stages)
    (held,) = behind(gateway(), gates=[running])
    assert "Rollout 12 of 1.4 has not reached it" in held.advice
    assert "edgeward release rollout show 12" in held.advice
    assert "edgeward fleet groups assign GROUP gw-1" in held.advice
    paused = Gate(12, "1.4", "paused", 0, stages)
    assert "edgeward release rollout resume 12" in behind(gateway(), gates=[paused])[0].advice
    aborted = Gate(12, "1.4", "aborted", 0, stages)
    assert "edgeward release rollout create ew-gw1 1.4" in behind(
        gateway(), gates=[aborted])[0].advice
    finished = Gate(12, "1.4", "finished", 1, stages)
    assert "offered to it" in behind(gateway(), gates=[finished])[0].advice


# -- attestation and silence ------------------------------------------------------------


def test_stale_failed_and_missing_attestation_and_silence() -> None:
    hour = dt.timedelta(hours=1)
    fleet = [gateway("gw-ok", 1),
             gateway("gw-stale", 2, attested_at=NOW - 26 * hour),
             gateway("gw-edge", 3, attested_at=NOW - 25 * hour),
             gateway("gw-failed", 4, attestation="failed",
                     attestation_detail="kernel hash not known-good"),
             gateway("gw-never", 5, attestation="unknown", attested_at=None),
             gateway("gw-new", 6, attestation="unknown", attested_at=None,
                     enrolled_at=NOW - 2 * hour),
             gateway("gw-silent", 7, last_seen_at=NOW - 2 * hour,
                     attested_at=NOW - 40 * hour),
             gateway("gw-never-seen", 8, last_seen_at=None)]
    found = fleetaudit.attestation(fleet, NOW)
    assert checks(found) == [("gw-stale", "attestation.stale", "medium"),
                             ("gw-failed", "attestation.failed", "high"),
                             ("gw-never", "attestation.never", "medium"),
                             ("gw-silent", "reporting.stopped", "medium"),
                             ("gw-never-seen", "reporting.stopped", "medium")]
    assert "26.0 hours ago" in found[0].detail
    assert "kernel hash not known-good" in found[1].detail
    assert "edgeward fleet events --gateway gw-failed" in found[1].advice
    assert "2.0 hours ago" in found[3].detail  # silence is said, not stale attestation
    assert "edgeward fleet revoke gw-silent" in found[3].advice
    assert "never" in found[4].detail
    strict = fleetaudit.attestation(fleet[:3], NOW, stale_after=24 * hour)
    assert [f.gateway for f in strict] == ["gw-stale", "gw-edge"]


def test_the_audit_orders_by_severity() -> None:
    fleet = [gateway("gw-b", 1, attested_at=NOW - 3 * DAY),
             gateway("gw-a", 2, cert_pem=cert("gw-a", NOW - DAY)),
             gateway("gw-c", 3, cert_pem=cert("gw-c", NOW + DAY))]
    found = fleetaudit.audit(fleet, fleet, [], {}, {}, NOW)
    assert checks(found) == [("gw-a", "certificate.expired", "high"),
                             ("gw-b", "attestation.stale", "medium"),
                             ("gw-c", "certificate.expiring", "medium")]
    for finding in found:
        assert finding.severity in fleetaudit.SEVERITIES and finding.title and finding.advice


@pytest.mark.parametrize("pem", ["", "garbage", "-----BEGIN CERTIFICATE-----\n\n"])
def test_an_unreadable_certificate_has_no_key(pem: str) -> None:
    assert fleetaudit.certificate(pem) == fleetaudit.Certificate(None, None)
