"""X.509 for the factory: a manufacturer CA, device certificates from CSRs.

The device makes its key and a CSR; the CA checks the CSR's self-signature,
then issues a certificate whose subject is the serial number the *factory*
assigned (never a name taken from the CSR), for TLS client authentication and
attestation. Verification is pure: certificate bytes, trusted CA certificates
and the reference time in, the verified serial out.
"""

from __future__ import annotations

import datetime as dt
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from edgeward.errors import CertificateError, InputError
from edgeward.trust.digest import sha384_hex
from edgeward.trust.keys import Algorithm, PrivateKey, PublicKey, algorithm_of

SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEVICE_URI = "urn:edgeward:device:"


def check_serial(serial: str) -> str:
    if not SERIAL.fullmatch(serial):
        raise InputError(
            f"serial {serial!r}: use 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return serial


def _hash_for(key: PrivateKey) -> hashes.SHA384 | None:
    # Ed25519 signs without a separate hash; ECDSA P-384 with SHA-384.
    return None if algorithm_of(key) is Algorithm.ED25519 else hashes.SHA384()


def make_ca(key: PrivateKey, name: str, now: dt.datetime, days: int = 3650 * 2) -> x509.Certificate:
    if algorithm_of(key) is not Algorithm.ECDSA_P384:
        # pyca's client verifier (the fleet server's mTLS check) accepts no Ed25519 CA.
        raise InputError("a manufacturer CA key must be ECDSA P-384")
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Manufacturer CA"),
    ])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _hash_for(key))
    )


def make_csr(key: PrivateKey, serial: str) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial)]))
        .sign(key, _hash_for(key))
    )


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise InputError("CSR: not a valid PEM certificate signing request") from e
    _check_csr(csr)
    return csr


def _check_csr(csr: x509.CertificateSigningRequest) -> PublicKey:
    try:
        valid = csr.is_signature_valid
        public = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CertificateError("CSR: its public key is malformed or unsupported") from e
    if not valid:
        raise CertificateError("CSR: its self-signature does not verify")
    return _supported(public, "CSR")


def issue(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    serial: str,
    model: str,
    now: dt.datetime,
    days: int = 3650 * 2,
    purpose: str = "device",
) -> x509.Certificate:
    """Issue an end-entity certificate for the key in ``csr``.

    ``purpose`` is ``device`` (TLS client + attestation) or ``station`` (a
    factory station that signs manufacturing records).
    """
    check_serial(serial)
    public = _check_csr(csr)
    orgs = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org = orgs[0].value if orgs and isinstance(orgs[0].value, str) else "edgeward"
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.TITLE, model),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
        x509.NameAttribute(NameOID.COMMON_NAME, serial),
    ])
    eku = [ExtendedKeyUsageOID.CLIENT_AUTH] if purpose == "device" else [
        ExtendedKeyUsageOID.CODE_SIGNING]
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=purpose == "device", key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(f"{DEVICE_URI}{serial}")]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            public_key_of(ca_cert)), critical=False)
        .sign(ca_key, _hash_for(ca_key))
    )


def load_cert(data: bytes, what: str = "certificate") -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, x509.InvalidVersion) as e:
        raise InputError(f"{what}: not a valid X.509 certificate") from e


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-384 of the DER certificate, lowercase hex."""
    return sha384_hex(cert.public_bytes(serialization.Encoding.DER))


def subject_text(cert: x509.Certificate) -> str:
    """The subject for messages; a name pyca cannot decode is said to be so."""
    try:
        return cert.subject.rfc4514_string()
    except (ValueError, KeyError):
        return "(undecodable subject)"


def serial_of(cert: x509.Certificate) -> str:
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    except (ValueError, KeyError) as e:
        raise CertificateError("certificate subject cannot be decoded") from e
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise CertificateError("certificate has no single serialNumber in its subject")
    return names[0].value


def verify_device_cert(
    cert: x509.Certificate, cas: list[x509.Certificate], now: dt.datetime
) -> str:
    """Verify ``cert`` chains to one of ``cas`` at ``now`` for client auth; return its serial."""
    if not cas:
        raise CertificateError("no trusted manufacturer CA")
    for ca in cas:
        if not _is_ca(ca):
            raise CertificateError(f"{subject_text(ca)} is not a CA certificate and cannot "
                                   "be a trust anchor")
    try:
        verifier = PolicyBuilder().store(Store(cas)).time(_aware(now)).build_client_verifier()
        verifier.verify(cert, [])
    except (VerificationError, ValueError, KeyError, x509.InvalidVersion) as e:
        raise CertificateError(f"device certificate refused: {e}") from e
    return serial_of(cert)


def _supported(key: object, what: str) -> PublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP384R1)
    ):
        raise CertificateError(f"{what}: key is not P-384 or Ed25519")
    return key


def public_key_of(cert: x509.Certificate) -> PublicKey:
    return _supported(cert.public_key(), "certificate")


def verify_issued_by(cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> None:
    """Check that ``cert`` is directly signed by ``ca`` and valid at ``now``."""
    now = _aware(now)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, KeyError, InvalidSignature, UnsupportedAlgorithm) as e:
        raise CertificateError(f"certificate {subject_text(cert)} is not "
                               f"issued by {subject_text(ca)}") from e
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateError(f"certificate {subject_text(cert)} is not valid "
                               f"at {now.isoformat()}")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def require_station(cert: x509.Certificate) -> None:
    """A certificate fit to sign manufacturing records: an end entity for code signing."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError) as e:
        raise CertificateError("station certificate has no extended key usage") from e
    if _is_ca(cert) or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateError(f"{subject_text(cert)} is not a factory station certificate")


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("reference time must be timezone-aware (UTC)")
    return now
