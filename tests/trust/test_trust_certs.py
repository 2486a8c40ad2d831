"""The manufacturer CA, CSRs and device certificates, verified with pyca's X.509 verifier."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeward.errors import CertificateError, InputError
from edgeward.trust import certs, keys
from edgeward.trust.digest import sha384_hex
from edgeward.trust.keys import Algorithm

DAY = dt.timedelta(days=1)


def one_line(error: Exception) -> str:
    message = str(error)
    assert message.strip() and message.splitlines() == [message], repr(message)
    return message


def break_signature(der: bytes) -> bytes:
    """Flip the last byte of a DER object: the tail of its signature BIT STRING."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


# ---------------------------------------------------------------------------- CA, issue


def test_ca_shape(world: Any) -> None:
    ca = world.ca_cert
    assert ca.subject == ca.issuer
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    ca.verify_directly_issued_by(ca)
    assert ca.not_valid_before_utc <= world.now <= ca.not_valid_after_utc


@pytest.mark.parametrize("algorithm", [Algorithm.ECDSA_P384, Algorithm.ED25519])
def test_device_cert_verifies_against_its_ca(world: Any, new_device: Any,
                                             algorithm: Algorithm) -> None:
    key, cert = new_device(world.ca_key, world.ca_cert, "gw-0042", algorithm)
    assert certs.verify_device_cert(cert, [world.ca_cert], world.now) == "gw-0042"
    assert certs.verify_device_cert(cert, [world.other_ca_cert, world.ca_cert],
                                    world.now) == "gw-0042"
    certs.verify_issued_by(cert, world.ca_cert, world.now)
    assert keys.keyid(certs.public_key_of(cert)) == keys.keyid(key.public_key())


def test_issued_certificate_contents(world: Any) -> None:
    cert = world.device_cert
    ext = cert.extensions
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ext.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier) == [f"urn:edgeward:device:{world.serial}"]
    assert cert.issuer == world.ca_cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Test Gateways Ltd")
    assert cert.not_valid_after_utc <= world.ca_cert.not_valid_after_utc


def test_subject_uses_the_factory_serial_not_the_csrs(world: Any) -> None:
    key = keys.generate()
    csr = certs.make_csr(key, "ATTACKER-CHOSEN")
    cert = certs.issue(world.ca_key, world.ca_cert, csr, "gw-0007", "ew-gw1", world.now)
    assert certs.serial_of(cert) == "gw-0007"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-0007"
    assert "ATTACKER-CHOSEN" not in cert.subject.rfc4514_string()
    assert b"ATTACKER-CHOSEN" not in cert.public_bytes(serialization.Encoding.DER)
    assert certs.verify_device_cert(cert, [world.ca_cert], world.now) == "gw-0007"
    # ...while the key is the CSR's
    assert certs.public_key_of(cert) == key.public_key()


def test_certificate_lifetime_is_capped_by_the_ca(world: Any) -> None:
    csr = certs.make_csr(keys.generate(), "x")
    cert = certs.issue(world.ca_key, world.ca_cert, csr, "gw-1", "m", world.now, days=100_000)
    assert cert.not_valid_after_utc == world.ca_cert.not_valid_after_utc


@pytest.mark.parametrize("serial", ["", "-gw", "gw 1", "gw/1", "a" * 65, "gw\n1", "gw\u00e9"])
def test_bad_serial_refused(world: Any, serial: str) -> None:
    with pytest.raises(InputError, match="^serial "):
        certs.check_serial(serial)
    with pytest.raises(InputError):
        certs.issue(world.ca_key, world.ca_cert, certs.make_csr(keys.generate(), "x"), serial,
                    "m", world.now)


def test_good_serials() -> None:
    for serial in ("a", "GW-0001", "gw_1.2-x", "9" + "z" * 63):
        assert certs.check_serial(serial) == serial


# ---------------------------------------------------------------------------- refusals


def test_refused_against_another_ca(world: Any) -> None:
    with pytest.raises(CertificateError, match="^device certificate refused: ") as info:
        certs.verify_device_cert(world.device_cert, [world.other_ca_cert], world.now)
    one_line(info.value)
    with pytest.raises(CertificateError, match="is not issued by"):
        certs.verify_issued_by(world.device_cert, world.other_ca_cert, world.now)


def test_refused_against_an_impostor_ca_with_the_same_name(world: Any) -> None:
    impostor_key = keys.generate()
    impostor = certs.make_ca(impostor_key, "Test Gateways Ltd", world.now)
    assert impostor.subject == world.ca_cert.subject
    with pytest.raises(CertificateError):
        certs.verify_device_cert(world.device_cert, [impostor], world.now)
    with pytest.raises(CertificateError):
        certs.verify_issued_by(world.device_cert, impostor, world.now)
    # and the impostor's own device certs do not pass with the real CA
    forged = certs.issue(impostor_key, impostor, certs.make_csr(keys.generate(), "x"),
                         world.serial, "m", world.now)
    with pytest.raises(CertificateError):
        certs.verify_device_cert(forged, [world.ca_cert], world.now)


def test_refused_with_no_ca(world: Any) -> None:
    with pytest.raises(CertificateError, match="no trusted manufacturer CA"):
        certs.verify_device_cert(world.device_cert, [], world.now)


@pytest.mark.parametrize("offset", [366 * DAY, 30 * 365 * DAY, -DAY])
def test_refused_outside_validity(world: Any, offset: dt.timedelta) -> None:
    """The device cert is valid 365 days from ``now`` (minus 5 minutes)."""
    at = world.now + offset
    with pytest.raises(CertificateError, match="device certificate refused") as info:
        certs.verify_device_cert(world.device_cert, [world.ca_cert], at)
    assert "not valid at validation time" in one_line(info.value)
    with pytest.raises(CertificateError, match="is not valid at"):
        certs.verify_issued_by(world.device_cert, world.ca_cert, at)


def test_valid_at_both_ends(world: Any) -> None:
    cert = world.device_cert
    for at in (cert.not_valid_before_utc, cert.not_valid_after_utc):
        assert certs.verify_device_cert(cert, [world.ca_cert], at) == world.serial


def test_station_certificate_is_not_a_device_certificate(world: Any) -> None:
    csr = certs.make_csr(keys.generate(Algorithm.ED25519), "st")
    station = certs.issue(world.ca_key, world.ca_cert, csr, "station-1", "station",
                          world.now, purpose="station")
    certs.verify_issued_by(station, world.ca_cert, world.now)
    with pytest.raises(CertificateError, match="EKU"):
        certs.verify_device_cert(station, [world.ca_cert], world.now)


def test_ca_certificate_is_not_a_device_certificate(world: Any) -> None:
    with pytest.raises(CertificateError):
        certs.verify_device_cert(world.ca_cert, [world.ca_cert], world.now)


def test_altered_device_certificate_refused(world: Any) -> None:
    der = world.device_cert.public_bytes(serialization.Encoding.DER)
    altered = certs.load_cert(break_signature(der))
    with pytest.raises(CertificateError):
        certs.verify_device_cert(altered, [world.ca_cert], world.now)
    with pytest.raises(CertificateError):
        certs.verify_issued_by(altered, world.ca_cert, world.now)


# ---------------------------------------------------------------------------- CSRs


@pytest.mark.parametrize("algorithm", [Algorithm.ECDSA_P384, Algorithm.ED25519])
def test_csr_round_trip(algorithm: Algorithm) -> None:
    key = keys.generate(algorithm)
    pem = certs.make_csr(key, "gw-5").public_bytes(serialization.Encoding.PEM)
    csr = certs.load_csr(pem)
    assert csr.is_signature_valid
    assert keys.keyid(csr.public_key()) == keys.keyid(key.public_key())  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", [Algorithm.ECDSA_P384, Algorithm.ED25519])
def test_csr_with_broken_self_signature_refused(world: Any, algorithm: Algorithm) -> None:
    csr = certs.make_csr(keys.generate(algorithm), "gw-6")
    broken = x509.load_der_x509_csr(break_signature(csr.public_bytes(serialization.Encoding.DER)))
    assert not broken.is_signature_valid
    pem = broken.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateError, match="^CSR: its self-signature does not verify$"):
        certs.load_csr(pem)
    with pytest.raises(CertificateError, match="self-signature does not verify"):
        certs.issue(world.ca_key, world.ca_cert, broken, "gw-6", "m", world.now)


def test_csr_with_a_swapped_key_refused(world: Any) -> None:
    """A CSR signed by one key but carrying another's public key is refused."""
    signer, victim = keys.generate(), keys.generate()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "gw")])))
    good = csr.sign(signer, hashes.SHA384())
    der = good.public_bytes(serialization.Encoding.DER)
    spki_signer = keys.public_der(signer.public_key())
    spki_victim = keys.public_der(victim.public_key())
    assert der.count(spki_signer) == 1 and len(spki_signer) == len(spki_victim)
    swapped = x509.load_der_x509_csr(der.replace(spki_signer, spki_victim))
    with pytest.raises(CertificateError):
        certs.issue(world.ca_key, world.ca_cert, swapped, "gw-8", "m", world.now)


def test_csr_with_an_unsupported_key_refused(world: Any) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, "gw")]))
           .sign(p256, hashes.SHA256()))
    with pytest.raises(CertificateError, match="not P-384 or Ed25519"):
        certs.issue(world.ca_key, world.ca_cert, csr, "gw-9", "m", world.now)


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\n"])
def test_garbage_csr_refused(data: bytes) -> None:
    with pytest.raises(InputError, match="not a valid PEM certificate signing request"):
        certs.load_csr(data)


# ---------------------------------------------------------------------------- encodings


def test_load_cert_pem_der_and_fingerprint(world: Any) -> None:
    der = world.device_cert.public_bytes(serialization.Encoding.DER)
    assert certs.load_cert(der) == world.device_cert
    assert certs.load_cert(certs.cert_pem(world.device_cert)) == world.device_cert
    assert certs.fingerprint(world.device_cert) == sha384_hex(der)
    with pytest.raises(InputError, match="^device cert: not a valid X.509 certificate$"):
        certs.load_cert(der[:-10], "device cert")


def test_serial_of_needs_exactly_one(world: Any) -> None:
    with pytest.raises(CertificateError, match="no single serialNumber"):
        certs.serial_of(world.ca_cert)


# ---------------------------------------------------------------------------- bug found


def test_refusal_message_of_a_hostile_certificate_is_one_line(world: Any) -> None:
    key = keys.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         "gw-9\nattestation OK: gw-9 is healthy")])
    hostile = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(world.now - 900 * DAY).not_valid_after(world.now - 800 * DAY)
               .sign(key, hashes.SHA384()))
    with pytest.raises(CertificateError) as info:
        certs.verify_device_cert(hostile, [world.ca_cert], world.now)
    one_line(info.value)


def der(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


def csr_with_broken_key(world: Any, how: str) -> x509.CertificateSigningRequest:
    """A CSR that parses, whose public key does not: a bad point or an unknown curve."""
    key = keys.generate()
    raw = der(certs.make_csr(key, "gw-0001"))
    if how == "point":
        spki = keys.public_der(key.public_key())
        at = raw.index(spki) + len(spki) - 1  # last byte of the point's y coordinate
    else:
        at = raw.index(bytes.fromhex("06052b81040022")) + 2  # secp384r1 OID, first arc
    return x509.load_der_x509_csr(raw[:at] + bytes([raw[at] ^ 0x20]) + raw[at + 1:])


@pytest.mark.parametrize("how", ["point", "curve"])
def test_csr_with_a_malformed_key_is_an_input_error(world: Any, how: str) -> None:
    pem = csr_with_broken_key(world, how).public_bytes(serialization.Encoding.PEM)
    with pytest.raises((InputError, CertificateError)):
        certs.load_csr(pem)


def test_issue_with_a_malformed_csr_key_is_a_certificate_error(world: Any) -> None:
    with pytest.raises(CertificateError):
        certs.issue(world.ca_key, world.ca_cert, csr_with_broken_key(world, "point"), "gw-1",
                    "m", world.now)


def test_certificate_with_a_bad_version_is_an_input_error(world: Any) -> None:
    raw = der(world.device_cert)
    v3 = b"\xa0\x03\x02\x01\x02"
    assert raw.count(v3) == 1
    with pytest.raises(InputError, match="not a valid X.509 certificate"):
        certs.load_cert(raw.replace(v3, b"\xa0\x03\x02\x01\x03"))


def cert_with_unknown_string_tag(world: Any) -> x509.Certificate:
    """The device cert with its subject O= re-tagged from UTF8String (12) to tag 13."""
    raw = der(world.device_cert)
    org = b"\x0c\x11Test Gateways Ltd"
    at = raw.index(org, raw.index(org) + 1)  # the second one: issuer comes first
    return certs.load_cert(raw[:at] + b"\x0d" + raw[at + 1:])


@pytest.mark.parametrize("call", ["verify_issued_by", "serial_of"])
def test_name_with_an_unknown_string_tag_is_a_certificate_error(world: Any, call: str) -> None:
    cert = cert_with_unknown_string_tag(world)
    # the chain verifier copes with it: only the two helpers above do not
    with pytest.raises(CertificateError):
        certs.verify_device_cert(cert, [world.ca_cert], world.now)
    with pytest.raises(CertificateError):
        if call == "verify_issued_by":
            certs.verify_issued_by(cert, world.ca_cert, world.now)
        else:
            certs.serial_of(cert)


def test_issued_by_refusal_of_a_hostile_certificate_is_one_line(world: Any) -> None:
    key = keys.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x\nstation OK")])
    hostile = (x509.CertificateBuilder().subject_name(name).issuer_name(world.ca_cert.subject)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(world.now - DAY).not_valid_after(world.now + DAY)
               .sign(key, hashes.SHA384()))
    with pytest.raises(CertificateError) as info:
        certs.verify_issued_by(hostile, world.ca_cert, world.now)
    one_line(info.value)
