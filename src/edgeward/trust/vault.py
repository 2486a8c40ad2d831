"""Envelope encryption of the fleet server's secrets at rest (pure: bytes in, bytes out).

Three layers, AES-256-GCM throughout:

* the **master key** (32 random bytes) lives outside the database; from it HKDF-SHA384
  derives a key-wrapping key and, apart, a **key check** value the database keeps so a
  wrong master key is refused at start rather than found out as garbage later;
* an **envelope key** per owner (a tenant, or the platform's escrow) is random and kept
  in the database wrapped under the key-wrapping key, its owner as associated data;
* each **value** (a secret, a recovery key, a credential) is encrypted under its owner's
  envelope key with associated data naming exactly where it belongs (tenant, app, group,
  name, version ...): a row copied anywhere else does not decrypt.

Associated data is length-prefixed field by field, so no two different bindings encode
alike whatever the fields hold.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edgeward.errors import IntegrityError, KeyFileError

KEY_SIZE = 32
NONCE = 12
MAGIC = b"EWVLT1"
_WRAP = b"edgeward vault: envelope key wrapping v1"
_CHECK = b"edgeward vault: master key check v1"


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def _sized(key: bytes, what: str) -> bytes:
    if len(key) != KEY_SIZE:
        raise KeyFileError(f"{what} must be {KEY_SIZE} bytes")
    return key


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA384(), length=KEY_SIZE, salt=None,
                info=info).derive(_sized(master, "the master key"))


def binding(kind: str, *fields: str | int | None) -> bytes:
    """Associated data: a kind and fields, each tagged and length-prefixed (None apart)."""
    out = b"edgeward vault v1\x00" + kind.encode()
    for value in fields:
        if value is None:
            out += b"\x00"
            continue
        data = str(value).encode()
        out += b"\x01" + len(data).to_bytes(4, "big") + data
    return out


def encrypt(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return MAGIC + nonce + AESGCM(_sized(key, "an envelope key")).encrypt(
        nonce, plaintext, associated)


def decrypt(key: bytes, blob: bytes, associated: bytes) -> bytes:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE + 16:
        raise IntegrityError("stored secret: unknown format")
    nonce = blob[len(MAGIC):len(MAGIC) + NONCE]
    try:
        return AESGCM(_sized(key, "an envelope key")).decrypt(
            nonce, blob[len(MAGIC) + NONCE:], associated)
    except InvalidTag as e:
        raise IntegrityError("a stored secret does not decrypt: altered, moved to another "
                             "place, or under another key") from e


def key_check(master: bytes) -> bytes:
    """What the database keeps to recognise the master key (reveals nothing of it)."""
    return _derive(master, _CHECK)


def matches(master: bytes, check: bytes) -> bool:
    return hmac.compare_digest(key_check(master), check)


def wrap_key(master: bytes, envelope_key: bytes, owner: str) -> bytes:
    """An envelope key wrapped under the master key, bound to its owner."""
    return encrypt(_derive(master, _WRAP), _sized(envelope_key, "an envelope key"),
                   binding("envelope-key", owner))


def unwrap_key(master: bytes, wrapped: bytes, owner: str) -> bytes:
    return _sized(decrypt(_derive(master, _WRAP), wrapped, binding("envelope-key", owner)),
                  "an envelope key")


def secret_binding(tenant_id: int, app: str, group: str | None, name: str,
                   version: int) -> bytes:
    """A tenant's secret: tenant, app, group (None: every gateway), name, version."""
    return binding("secret", tenant_id, app, group, name, version)


def recovery_binding(gateway_id: int, serial: str) -> bytes:
    """A gateway's escrowed data-volume recovery key."""
    return binding("recovery-key", gateway_id, serial)


def credential_binding(owner: str, gateway_id: int, serial: str, app: str, name: str
                       ) -> bytes:
    """A per-device credential a gateway reported, under ``owner``'s envelope key."""
    return binding("credential", owner, gateway_id, serial, app, name)
