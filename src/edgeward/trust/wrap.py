"""Key wrapping under a key derived from the fused HUK (pure).

The KEK is HKDF-SHA384(HUK, info = purpose || binding): the binding names the
boot chain's signers, so only the same board (same HUK) running a chain signed
by the same keys derives the same KEK. The wrapped blob is AES-256-GCM with
the binding as associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edgeward.errors import IntegrityError

MAGIC = b"EWWRAP1"
NONCE = 12


def derive_kek(huk: bytes, purpose: bytes, binding: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA384(), length=32, salt=None,
                info=purpose + b"\x00" + binding).derive(huk)


def wrap(kek: bytes, secret: bytes, binding: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return MAGIC + nonce + AESGCM(kek).encrypt(nonce, secret, binding)


def unwrap(kek: bytes, blob: bytes, binding: bytes) -> bytes:
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE + 16:
        raise IntegrityError("wrapped key: unknown format")
    nonce = blob[len(MAGIC):len(MAGIC) + NONCE]
    try:
        return AESGCM(kek).decrypt(nonce, blob[len(MAGIC) + NONCE:], binding)
    except InvalidTag as e:
        raise IntegrityError("wrapped key does not unwrap with this board's key") from e


DIRECTORY_KEY = 64  # an fscrypt v2 master key for AES-256-XTS


def derive_directory_key(volume_key: bytes, label: str) -> bytes:
    """The fscrypt key of one directory of the data volume (``system``, ``app:<name>``).

    HKDF-SHA512 with the label as info: one directory's key says nothing of the
    volume key or of any other directory's key.
    """
    return HKDF(algorithm=hashes.SHA512(), length=DIRECTORY_KEY, salt=None,
                info=b"edgeward data directory v1\x00" + label.encode()).derive(volume_key)


def directory_key_identifier(key: bytes) -> bytes:
    """The identifier the kernel gives an fscrypt v2 master key (fs/crypto/keyring.c:
    HKDF-SHA512 over the key, info ``"fscrypt\\0"`` and context 1): a directory's policy
    names its key by it, so a key can be checked against a policy without the kernel."""
    return HKDF(algorithm=hashes.SHA512(), length=16, salt=None,
                info=b"fscrypt\x00\x01").derive(key)
