"""Key pairs: ECDSA P-384 and Ed25519, their encodings and key ids.

A key id is the lowercase hex SHA-384 of the public key's DER
SubjectPublicKeyInfo; for the boot root key it is exactly what the ROM's
``root_key_hash`` fuse holds. Private keys are PKCS#8 PEM, encrypted with the
best scheme ``cryptography`` offers when a passphrase is given (offline keys).
"""

from __future__ import annotations

import enum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgeward.errors import KeyFileError
from edgeward.trust.digest import sha384, sha384_hex

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class Algorithm(enum.StrEnum):
    ECDSA_P384 = "ecdsa-p384"
    ED25519 = "ed25519"


def generate(algorithm: Algorithm = Algorithm.ECDSA_P384) -> PrivateKey:
    if algorithm is Algorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP384R1())


def algorithm_of(key: PrivateKey | PublicKey) -> Algorithm:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return Algorithm.ED25519
    if isinstance(key.curve, ec.SECP384R1):
        return Algorithm.ECDSA_P384
    raise KeyFileError(f"unsupported curve {key.curve.name}: edgeward uses P-384 or Ed25519")


def public_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def keyid(key: PublicKey) -> str:
    return sha384_hex(public_der(key))


def key_hash(key: PublicKey) -> bytes:
    """The 48-byte SHA-384 of the public key, as fused into OTP."""
    return sha384(public_der(key))


def private_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private(data: bytes, passphrase: bytes | None = None, what: str = "key") -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as e:
        # cryptography says TypeError both for "encrypted, no passphrase" and the reverse.
        if passphrase:
            raise KeyFileError(f"{what} is not encrypted, but a passphrase was given") from e
        raise KeyFileError(f"{what} is encrypted: a passphrase is needed") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFileError(f"{what}: wrong passphrase or not a valid private key") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{what}: unsupported key type (edgeward uses P-384 or Ed25519)")
    algorithm_of(key)
    return key


def load_public(data: bytes, what: str = "public key") -> PublicKey:
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyFileError(f"{what}: not a valid public key") from e
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise KeyFileError(f"{what}: unsupported key type (edgeward uses P-384 or Ed25519)")
    algorithm_of(key)
    return key
