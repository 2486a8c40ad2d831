"""SHA-384, the project's one digest."""

from __future__ import annotations

import hashlib
import hmac
from typing import BinaryIO

DIGEST_SIZE = 48
CHUNK = 1 << 20


def sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def sha384_hex(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()


def sha384_stream(stream: BinaryIO, length: int | None = None, chunk: int = CHUNK) -> bytes:
    """Digest of a stream (of its first ``length`` bytes), in constant memory."""
    h = hashlib.sha384()
    remaining = length
    while remaining is None or remaining > 0:
        want = chunk if remaining is None else min(chunk, remaining)
        block = stream.read(want)
        if not block:
            break
        h.update(block)
        if remaining is not None:
            remaining -= len(block)
    return h.digest()


def same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two digests or secrets."""
    return hmac.compare_digest(a, b)
