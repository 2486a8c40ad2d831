"""What a sealed secret is for: the HPKE ``info`` strings both ends agree on (pure).

The fleet server seals each secret, credential and recovery key to one
gateway's identity key (see :mod:`edgeward.trust.sealing`) with an ``info``
naming exactly what it is: which gateway, which app, which secret and which
version. A box taken from one gateway's delivery does not open as another
secret, another app's, an older version, or on another gateway.
"""

from __future__ import annotations


def _info(kind: bytes, *parts: str) -> bytes:
    return b"edgeward " + kind + b" v1" + b"".join(b"\x00" + p.encode() for p in parts)


def secret_info(serial: str, app: str, name: str, version: int) -> bytes:
    """A tenant's secret for ``app``, as delivered to gateway ``serial``."""
    return _info(b"secret", serial, app, name, str(version))


def credential_info(serial: str, app: str, name: str) -> bytes:
    """A per-device credential made on gateway ``serial`` for ``app``."""
    return _info(b"credential", serial, app, name)
