"""Sealing secrets to a device's public key: HPKE (RFC 9180) from pyca.

Suite: DHKEM(P-384, HKDF-SHA384), HKDF-SHA384, AES-256-GCM, base mode. The
``info`` string binds a sealed box to its purpose (e.g. which app a secret is
for), so a box sealed for one purpose does not open for another.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec

from edgeward.errors import IntegrityError, KeyFileError
from edgeward.trust.keys import PrivateKey, PublicKey

MAGIC = b"EWSEAL1"
_SUITE = hpke.Suite(hpke.KEM.P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM)


def _p384_public(key: PublicKey) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise KeyFileError("sealing needs a P-384 public key")
    return key


def seal(recipient: PublicKey, plaintext: bytes, info: bytes) -> bytes:
    return MAGIC + _SUITE.encrypt(plaintext, _p384_public(recipient), info=info)


def unseal(recipient: PrivateKey, sealed: bytes, info: bytes) -> bytes:
    if not isinstance(recipient, ec.EllipticCurvePrivateKey):
        raise KeyFileError("unsealing needs a P-384 private key")
    _p384_public(recipient.public_key())
    if not sealed.startswith(MAGIC):
        raise IntegrityError("sealed box: unknown format")
    try:
        return _SUITE.decrypt(sealed[len(MAGIC):], recipient, info=info)
    except (InvalidTag, ValueError) as e:
        raise IntegrityError(
            "sealed box does not open: not sealed to this key, for this purpose, or altered"
        ) from e
