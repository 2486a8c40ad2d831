"""Detached signatures that name their key.

ECDSA P-384 signs with SHA-384 (DER-encoded signature); Ed25519 signs the
message itself. A :class:`Signature` carries the key id of its signer, so a
verifier picks the key from its trusted set by id and never tries keys blindly.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgeward.errors import EnvelopeError, SignatureError
from edgeward.trust.canonical import Fields, canonical, from_hex, load_object
from edgeward.trust.keys import PrivateKey, PublicKey, keyid

MAX_SIGNATURE = 512


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode()}

    def to_json(self) -> bytes:
        return canonical(self.to_dict())

    @classmethod
    def from_fields(cls, f: Fields) -> Signature:
        f.expect({"keyid", "sig"})
        kid = f.str_("keyid", max_len=96)
        try:
            from_hex(kid)
        except ValueError:
            f.fail("keyid must be lowercase hex")
        if len(kid) != 96:
            f.fail("keyid must be 96 hex characters (SHA-384)")
        sig = f.b64_("sig", max_len=MAX_SIGNATURE)
        if not sig:
            f.fail("empty signature")
        return cls(kid, sig)

    @classmethod
    def from_json(cls, data: bytes) -> Signature:
        return cls.from_fields(Fields(load_object(data, "signature", EnvelopeError),
                                      "signature", EnvelopeError))


def sign(key: PrivateKey, message: bytes) -> Signature:
    public = key.public_key()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(message)
    else:
        raw = key.sign(message, ec.ECDSA(hashes.SHA384()))
    return Signature(keyid(public), raw)


def verify_with(public: PublicKey, message: bytes, signature: Signature, what: str) -> None:
    """Raise SignatureError unless ``signature`` is ``public``'s over ``message``."""
    if signature.keyid != keyid(public):
        raise SignatureError(f"{what}: signed by key {signature.keyid[:16]}…, "
                             f"expected {keyid(public)[:16]}…")
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature.sig, message)
        else:
            public.verify(signature.sig, message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as e:
        raise SignatureError(f"{what}: signature does not verify") from e


def verify_any(
    trusted: Mapping[str, PublicKey],
    message: bytes,
    signatures: list[Signature],
    what: str,
    threshold: int = 1,
) -> list[str]:
    """Check that at least ``threshold`` distinct trusted keys signed ``message``.

    Returns the ids of the keys whose signatures verified; signatures by keys
    not in ``trusted`` are ignored, as TUF ignores them.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    good: list[str] = []
    for signature in signatures:
        public = trusted.get(signature.keyid)
        if public is None or signature.keyid in good:
            continue
        try:
            verify_with(public, message, signature, what)
        except SignatureError:
            continue
        good.append(signature.keyid)
    if len(good) < threshold:
        if not any(s.keyid in trusted for s in signatures):
            raise SignatureError(f"{what}: not signed by any trusted key")
        if not good and threshold == 1:
            raise SignatureError(f"{what}: the signature by the trusted key does not verify "
                                 "(the signed bytes were altered or the signature forged)")
        raise SignatureError(
            f"{what}: {len(good)} valid signature(s) from trusted keys, {threshold} required"
        )
    return good
