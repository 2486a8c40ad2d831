"""A dm-verity-style SHA-384 hash tree over a read-only image.

The image is cut into ``block_size`` blocks; each is hashed as
SHA-384(salt || block) into a 64-byte slot (48 bytes of digest, zero padded,
as dm-verity pads to a power of two). Slots fill hash blocks of level 0;
level k+1 hashes the blocks of level k; the single block at the top hashes to
the root, which the signed kernel bundle carries. The tree is stored right
after the data, level 0 first.

Two ways to check, both top-down from the signed root so that nothing is
trusted before its parent was: :func:`verify_all` streams the whole image and
reads every tree block once, in constant memory, whatever the image's size
(what the boot does); :class:`LazyVerifier` checks one block on demand along
its path to the root (what dm-verity does on a real gateway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgeward.errors import IntegrityError, ManifestError
from edgeward.trust.digest import DIGEST_SIZE

SLOT = 64
BLOCK_SIZE = 4096
CHUNK_BLOCKS = 256

# pread(offset, size) -> bytes: the one way the verifier reads an image.
Reader = Callable[[int, int], bytes]


@dataclass(frozen=True)
class TreeParams:
    data_size: int
    hash_offset: int
    block_size: int
    salt: bytes
    root_hash: bytes

    def geometry(self) -> Geometry:
        return Geometry(self.data_size, self.block_size)


@dataclass(frozen=True)
class Geometry:
    data_size: int
    block_size: int

    def __post_init__(self) -> None:
        if self.block_size < SLOT * 2 or self.block_size & (self.block_size - 1):
            raise ManifestError(f"hash tree: block size {self.block_size} is not a power of two")
        if self.data_size <= 0 or self.data_size % self.block_size:
            raise ManifestError(
                f"hash tree: data size {self.data_size} is not a positive multiple of "
                f"{self.block_size}")

    @property
    def fanout(self) -> int:
        return self.block_size // SLOT

    @property
    def data_blocks(self) -> int:
        return self.data_size // self.block_size

    def level_blocks(self) -> list[int]:
        """Number of hash blocks at each level, bottom (level 0) first."""
        levels = []
        children = self.data_blocks
        while True:
            blocks = -(-children // self.fanout)
            levels.append(blocks)
            if blocks == 1:
                return levels
            children = blocks

    def level_offsets(self) -> list[int]:
        """Byte offset of each level within the tree."""
        offsets, at = [], 0
        for blocks in self.level_blocks():
            offsets.append(at)
            at += blocks * self.block_size
        return offsets

    def tree_size(self) -> int:
        return sum(self.level_blocks()) * self.block_size


def _slot(salt: bytes, block: bytes) -> bytes:
    return hashlib.sha384(salt + block).digest() + bytes(SLOT - DIGEST_SIZE)


def _slots(salt: bytes, chunk: bytes, block_size: int) -> bytes:
    return b"".join(_slot(salt, chunk[i:i + block_size]) for i in range(0, len(chunk), block_size))


def _pad_block(slots: bytes, block_size: int) -> bytes:
    return slots + bytes(-len(slots) % block_size)


def build(read: Reader, data_size: int, salt: bytes, block_size: int = BLOCK_SIZE
          ) -> tuple[bytes, bytes]:
    """Build the tree over ``data_size`` bytes; return (root hash, tree bytes)."""
    geo = Geometry(data_size, block_size)
    level = b"".join(
        _slots(salt, read(off, min(CHUNK_BLOCKS * block_size, data_size - off)), block_size)
        for off in range(0, data_size, CHUNK_BLOCKS * block_size)
    )
    levels = []
    while True:
        level = _pad_block(level, block_size)
        levels.append(level)
        if len(level) == block_size:
            break
        level = _slots(salt, level, block_size)
    assert len(levels) == len(geo.level_blocks())
    return hashlib.sha384(salt + levels[-1]).digest(), b"".join(levels)


def _chunks(total_blocks: int) -> Iterator[tuple[int, int]]:
    for first in range(0, total_blocks, CHUNK_BLOCKS):
        yield first, min(CHUNK_BLOCKS, total_blocks - first)


def verify_all(read: Reader, params: TreeParams, progress: Callable[[int], None] | None = None
               ) -> None:
    """Check every data and hash block against the root, streaming, in constant memory.

    Top-down, in read order: a hash block is read once and checked against its
    already-verified parent before anything is checked against it, so storage
    that answers a second read differently gains nothing. ``progress`` is
    called with the number of data bytes checked so far.
    """
    verifier = LazyVerifier(read, params)
    geo, bs, salt = verifier.geometry, params.block_size, params.salt
    fanout = geo.fanout
    for first, n in _chunks(geo.data_blocks):
        chunk = read(first * bs, n * bs)
        if len(chunk) != n * bs:
            raise IntegrityError("rootfs image is shorter than its manifest says")
        parents = range(first // fanout, -(-(first + n) // fanout))
        slots = b"".join(verifier.hash_block(0, j) for j in parents)
        at = (first - parents[0] * fanout) * SLOT
        expected = slots[at:at + n * SLOT]
        if _slots(salt, chunk, bs) != expected:
            bad = next(i for i in range(n) if _slot(salt, chunk[i * bs:(i + 1) * bs])
                       != expected[i * SLOT:(i + 1) * SLOT])
            raise IntegrityError(f"rootfs data block {first + bad} does not match its hash")
        if progress is not None:
            progress((first + n) * bs)


class LazyVerifier:
    """Verify data blocks one at a time, on read, as dm-verity does.

    Every hash block is checked against its parent, itself verified, up to the
    signed root; the last verified block of each level is kept (constant
    memory), so a sequential walk reads each hash block exactly once.
    """

    def __init__(self, read: Reader, params: TreeParams) -> None:
        if params.hash_offset < params.data_size:
            raise ManifestError("hash tree: hash offset lies inside the data")
        self._read = read
        self._params = params
        self.geometry = params.geometry()
        self._offsets = self.geometry.level_offsets()
        self._top = len(self._offsets) - 1
        self._current: list[tuple[int, bytes] | None] = [None] * len(self._offsets)

    def hash_block(self, level: int, index: int) -> bytes:
        """Hash block ``index`` of ``level``, verified up to the root."""
        current = self._current[level]
        if current is not None and current[0] == index:
            return current[1]
        p, bs = self._params, self._params.block_size
        block = self._read(p.hash_offset + self._offsets[level] + index * bs, bs)
        if len(block) != bs:
            raise IntegrityError("rootfs hash tree is shorter than its manifest says")
        if level == self._top:
            expected = p.root_hash + bytes(SLOT - DIGEST_SIZE)
        else:
            parent = self.hash_block(level + 1, index // self.geometry.fanout)
            at = (index % self.geometry.fanout) * SLOT
            expected = parent[at:at + SLOT]
        if _slot(p.salt, block) != expected:
            raise IntegrityError(
                "rootfs hash tree does not match the signed root hash" if level == self._top
                else f"rootfs hash block {level}/{index} does not match its parent")
        self._current[level] = (index, block)
        return block

    def read_block(self, index: int) -> bytes:
        if not 0 <= index < self.geometry.data_blocks:
            raise IntegrityError(f"rootfs block {index} is outside the image")
        bs = self._params.block_size
        data = self._read(index * bs, bs)
        parent = self.hash_block(0, index // self.geometry.fanout)
        at = (index % self.geometry.fanout) * SLOT
        if len(data) != bs or _slot(self._params.salt, data) != parent[at:at + SLOT]:
            raise IntegrityError(f"rootfs data block {index} does not match its hash")
        return data
