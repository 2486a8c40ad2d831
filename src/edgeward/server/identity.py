"""The server's own TLS identity, made on first start in the data directory.

A private CA (``server-ca.pem``: what gateways and operators pin) and a
server certificate for the names it listens on, both P-384, keys 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeward.files import private_dir, save_private_key, write_atomic
from edgeward.trust import certs, keys


@dataclass(frozen=True)
class ServerIdentity:
    ca: Path
    cert: Path
    key: Path


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _covers(cert_file: Path, hosts: list[str], now: dt.datetime) -> bool:
    """Whether the certificate on file is valid now and names every host asked for."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(n.value) for n in names}
    return set(hosts) <= have and now < cert.not_valid_after_utc - dt.timedelta(days=30)


def ensure(data: Path, hosts: list[str], now: dt.datetime) -> ServerIdentity:
    """Load the server identity, or make it (first start, new names, near expiry).

    A new one has a new CA too: gateways and operators fetch ``server-ca.pem`` again.
    """
    tls = private_dir(data / "tls")
    found = ServerIdentity(tls / "server-ca.pem", tls / "server.pem", tls / "server.key")
    if found.ca.exists() and found.cert.exists() and found.key.exists() and _covers(
            found.cert, hosts, now):
        return found
    ca_key = keys.generate()
    ca = certs.make_ca(ca_key, "edgeward fleet server", now)
    key = keys.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            certs.public_key_of(ca)), critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    save_private_key(found.key, key)
    write_atomic(found.cert, certs.cert_pem(cert))
    write_atomic(found.ca, certs.cert_pem(ca))  # the CA key is not kept: nothing else to sign
    return found
