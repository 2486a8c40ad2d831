"""Signed envelopes: DSSE (Dead Simple Signing Envelope), parsed strictly.

An envelope carries an opaque payload, its type, and signatures over the
pre-authentication encoding PAE(type, payload), so a signature made for one
type of document can never be replayed as another. The payload is handed out
only after a trusted key's signature verified: :func:`open_envelope` is the
one way in.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from edgeward.errors import EnvelopeError
from edgeward.trust.canonical import Fields, canonical, load_object
from edgeward.trust.keys import PrivateKey, PublicKey
from edgeward.trust.signing import Signature, sign, verify_any

MAX_SIGNATURES = 16
MAX_ENVELOPE = 16 << 20


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_json(self) -> bytes:
        return canonical({
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [s.to_dict() for s in self.signatures],
        })


def seal_envelope(payload_type: str, payload: bytes, keys: list[PrivateKey]) -> Envelope:
    if not keys:
        raise ValueError("an envelope needs at least one signing key")
    message = pae(payload_type, payload)
    return Envelope(payload_type, payload, tuple(sign(k, message) for k in keys))


def parse_envelope(data: bytes, what: str = "envelope") -> Envelope:
    """Parse an envelope's structure (no signature is checked here)."""
    f = Fields(load_object(data, what, EnvelopeError, MAX_ENVELOPE), what, EnvelopeError)
    f.expect({"payloadType", "payload", "signatures"})
    payload_type = f.str_("payloadType", max_len=256)
    payload = f.b64_("payload", max_len=MAX_ENVELOPE)
    raw_sigs = f.list_("signatures", max_items=MAX_SIGNATURES)
    if not raw_sigs:
        f.fail("no signatures")
    signatures = []
    for i, raw in enumerate(raw_sigs):
        if not isinstance(raw, dict):
            f.fail(f"signature {i} must be an object")
        signatures.append(Signature.from_fields(Fields(raw, f"{what}.signatures[{i}]",
                                                       EnvelopeError)))
    return Envelope(payload_type, payload, tuple(signatures))


def open_envelope(
    data: bytes,
    payload_type: str,
    trusted: Mapping[str, PublicKey],
    what: str = "envelope",
    threshold: int = 1,
) -> tuple[bytes, list[str]]:
    """Parse, check the type, verify signatures; return (payload, signer key ids)."""
    envelope = parse_envelope(data, what)
    if envelope.payload_type != payload_type:
        raise EnvelopeError(
            f"{what}: payload type {envelope.payload_type!r}, expected {payload_type!r}"
        )
    signers = verify_any(
        trusted, pae(envelope.payload_type, envelope.payload), list(envelope.signatures),
        what, threshold,
    )
    return envelope.payload, signers
