"""The gateway's identity: a key made on the device, its certificate, its record.

The private key is generated here, on the device, and stored only sealed under
the board's HUK (see keyring.py); the factory receives a CSR and nothing else.
After a verified boot the OS stage opens it into RAM for attestation and TLS.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeward.board.base import Board
from edgeward.device import keyring
from edgeward.errors import AttestationError, ProvisioningError
from edgeward.files import read_file, write_atomic
from edgeward.trust import certs, keys


def _dir(board: Board) -> Path:
    return board.data_dir / "identity"


def cert_path(board: Board) -> Path:
    return _dir(board) / "device.pem"


def record_path(board: Board) -> Path:
    return _dir(board) / "manufacturing.json"


def station_path(board: Board) -> Path:
    """The certificate of the factory station that signed the record (for enrolment)."""
    return _dir(board) / "station.pem"


def make_key_and_csr(board: Board, kek: keyring.Kek, serial: str) -> bytes:
    """Generate the identity key on the device, seal it to the board; return the CSR (PEM)."""
    key = keys.generate(keys.Algorithm.ECDSA_P384)
    keyring.seal(board, kek, keyring.IDENTITY, keys.private_pem(key))
    return certs.make_csr(key, serial).public_bytes(serialization.Encoding.PEM)


def install(board: Board, cert_pem: bytes, record: bytes, station_pem: bytes) -> None:
    cert = certs.load_cert(cert_pem, "device certificate")
    if keys.public_der(certs.public_key_of(cert)) != keys.public_der(
            identity_key(board).public_key()):
        raise ProvisioningError("the certificate is not for this device's key")
    write_atomic(cert_path(board), cert_pem)
    write_atomic(record_path(board), record)
    write_atomic(station_path(board), station_pem)


def identity_key(board: Board) -> keys.PrivateKey:
    """The identity key, which only a verified boot in this power cycle opens."""
    pem = keyring.recall(board, keyring.IDENTITY)
    if pem is None:
        raise AttestationError("the identity key is sealed: only a verified boot in this "
                               "power cycle opens it")
    return keys.load_private(pem, None, "device identity key")


def certificate(board: Board) -> x509.Certificate:
    return certs.load_cert(read_file(cert_path(board), "device certificate"),
                           "device certificate")
