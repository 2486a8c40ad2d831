"""edgeward keys as TUF keys and signers (securesystemslib), and TUF's errors as ours.

A TUF key id here is the edgeward key id (SHA-384 of the SPKI), so one key has
one id across boot manifests, certificates and TUF metadata. Signatures are
ECDSA P-384 over SHA-384 (``ecdsa-sha2-nistp384``) or Ed25519.
"""

from __future__ import annotations

from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Key

from edgeward.trust import keys


def tuf_key(public: keys.PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(public, keyid=keys.keyid(public))


def signer(private: keys.PrivateKey) -> CryptoSigner:
    return CryptoSigner(private, tuf_key(private.public_key()))


def same_key(a: Key, b: Key) -> bool:
    return a.keyid == b.keyid and a.keyval == b.keyval and a.scheme == b.scheme
