"""The gateway's identity: a key made on the device, its certificate, its record.

The private key is generated here, on the device, and written only into the
device's data area (mode 0600); the factory receives a CSR and nothing else.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgeward.board.base import Board
from edgeward.errors import InputError, ProvisioningError
from edgeward.files import load_private_key, read_file, save_private_key, write_atomic
from edgeward.trust import certs, keys


def _dir(board: Board) -> Path:
    return board.data_dir / "identity"


def key_path(board: Board) -> Path:
    return _dir(board) / "device.key"


def cert_path(board: Board) -> Path:
    return _dir(board) / "device.pem"


def record_path(board: Board) -> Path:
    return _dir(board) / "manufacturing.json"


def make_key_and_csr(board: Board, serial: str) -> bytes:
    """Generate the identity key on the device; return only the CSR (PEM)."""
    if key_path(board).exists():
        raise ProvisioningError("this device already has an identity key")
    key = keys.generate(keys.Algorithm.ECDSA_P384)
    save_private_key(key_path(board), key)
    return certs.make_csr(key, serial).public_bytes(serialization.Encoding.PEM)


def install(board: Board, cert_pem: bytes, record: bytes) -> None:
    cert = certs.load_cert(cert_pem, "device certificate")
    if keys.public_der(certs.public_key_of(cert)) != keys.public_der(
            identity_key(board).public_key()):
        raise ProvisioningError("the certificate is not for this device's key")
    write_atomic(cert_path(board), cert_pem)
    write_atomic(record_path(board), record)


def identity_key(board: Board) -> keys.PrivateKey:
    if not key_path(board).exists():
        raise InputError("this device has no identity key: provision it first")
    return load_private_key(key_path(board), None, "device identity key")


def certificate(board: Board) -> x509.Certificate:
    return certs.load_cert(read_file(cert_path(board), "device certificate"),
                           "device certificate")
