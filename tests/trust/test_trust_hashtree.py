"""The dm-verity-style hash tree: build, stream-verify, and lazy per-block verification.

Sizes are chosen at the tree's edges with 4096-byte blocks (fanout 64): one
block; 64 blocks (a single full level-0 hash block); 65 blocks (two level-0
blocks and a level 1); 64*64+1 blocks (65 level-0 blocks, two level-1 blocks,
a level 2, and more than one CHUNK_BLOCKS chunk in the streaming verifier).
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass

import pytest

from edgeward.errors import IntegrityError, ManifestError
from edgeward.trust import hashtree
from edgeward.trust.hashtree import BLOCK_SIZE, SLOT, Geometry, LazyVerifier, TreeParams

BS = BLOCK_SIZE
FANOUT = BS // SLOT
SIZES = {1: [1], 64: [1], 65: [2, 1], 64 * 64 + 1: [65, 2, 1]}


@dataclass
class Image:
    buf: bytearray
    params: TreeParams

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self.buf[offset:offset + size])

    @property
    def geometry(self) -> Geometry:
        return self.params.geometry()

    def flip(self, offset: int, bit: int) -> None:
        self.buf[offset] ^= 1 << bit

    def data_block_of(self, offset: int) -> int:
        """The first data block whose verification path covers byte ``offset``."""
        p = self.params
        if offset < p.data_size:
            return offset // BS
        within = offset - p.hash_offset
        geo = self.geometry
        for level, (start, blocks) in enumerate(zip(geo.level_offsets(), geo.level_blocks(),
                                                    strict=True)):
            if start <= within < start + blocks * BS:
                return (within - start) // BS * FANOUT ** (level + 1)
        raise AssertionError(f"offset {offset} is outside the image")

    def subtree(self, offset: int) -> range:
        """All data blocks whose path covers byte ``offset``."""
        p = self.params
        if offset < p.data_size:
            return range(offset // BS, offset // BS + 1)
        within = offset - p.hash_offset
        geo = self.geometry
        for level, start in enumerate(geo.level_offsets()):
            blocks = geo.level_blocks()[level]
            if start <= within < start + blocks * BS:
                span = FANOUT ** (level + 1)
                first = (within - start) // BS * span
                return range(first, min(first + span, geo.data_blocks))
        raise AssertionError(offset)


def make_image(blocks: int, salt: bytes | None = None) -> Image:
    data = os.urandom(blocks * BS)
    salt = os.urandom(32) if salt is None else salt
    root, tree = hashtree.build(lambda off, n: data[off:off + n], len(data), salt)
    params = TreeParams(data_size=len(data), hash_offset=len(data), block_size=BS, salt=salt,
                        root_hash=root)
    return Image(bytearray(data + tree), params)


@pytest.fixture(scope="module", params=list(SIZES), ids=[f"{n}-blocks" for n in SIZES])
def image(request: pytest.FixtureRequest) -> Image:
    return make_image(request.param)


def flip_offsets(img: Image) -> list[tuple[int, str]]:
    """Offsets to flip: data edges, chunk edges, and every tree level's slots and padding."""
    p, geo = img.params, img.geometry
    n = geo.data_blocks
    rng = random.Random(n)
    data = {0, BS - 1, p.data_size - 1, (n - 1) * BS, p.data_size // 2}
    data |= {b * BS + rng.randrange(BS) for b in (1, 63, 64, 255, 256, 257, n - 2) if 0 <= b < n}
    data |= {rng.randrange(p.data_size) for _ in range(4)}
    out = [(o, "data") for o in sorted(data)]
    children = n
    for level, (start, blocks) in enumerate(zip(geo.level_offsets(), geo.level_blocks(),
                                                strict=True)):
        base = p.hash_offset + start
        used = children * SLOT
        picks = {0, 47, 48, 63, used - 1, rng.randrange(used)}  # digest bytes and slot padding
        picks.add(blocks * BS - 1)  # the last byte of the level
        if used < blocks * BS:
            picks.add(used)  # the block padding after the last slot
        out += [(base + o, f"level-{level}") for o in sorted(picks)]
        children = blocks
    return out


# ---------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(("blocks", "levels"), list(SIZES.items()))
def test_geometry(blocks: int, levels: list[int]) -> None:
    geo = Geometry(blocks * BS, BS)
    assert geo.fanout == FANOUT
    assert geo.level_blocks() == levels
    offsets = [sum(levels[:i]) * BS for i in range(len(levels))]
    assert geo.level_offsets() == offsets
    assert geo.tree_size() == sum(levels) * BS


@pytest.mark.parametrize(("data_size", "block_size"), [
    (0, BS), (-BS, BS), (BS + 1, BS), (100, BS), (3000, 3000), (BS, 64), (BS, 0), (BS, -4096)])
def test_bad_geometry_refused(data_size: int, block_size: int) -> None:
    with pytest.raises(ManifestError, match="^hash tree: "):
        Geometry(data_size, block_size)


def test_hash_offset_inside_data_refused(image: Image) -> None:
    p = image.params
    bad = TreeParams(p.data_size, p.data_size - BS, BS, p.salt, p.root_hash)
    with pytest.raises(ManifestError, match="hash offset lies inside the data"):
        hashtree.verify_all(image.read, bad)


# ---------------------------------------------------------------------------- round trip


def test_build_is_deterministic_and_matches_a_reference(image: Image) -> None:
    """Recompute the root independently: slot = sha384(salt||block) + 16 zero bytes."""
    p = image.params
    level = [image.buf[i:i + BS] for i in range(0, p.data_size, BS)]
    while True:
        slots = b"".join(hashlib.sha384(p.salt + bytes(b)).digest() + bytes(16) for b in level)
        slots += bytes(-len(slots) % BS)
        level = [slots[i:i + BS] for i in range(0, len(slots), BS)]
        if len(level) == 1:
            break
    assert hashlib.sha384(p.salt + level[0]).digest() == p.root_hash
    again = hashtree.build(image.read, p.data_size, p.salt)
    assert again == (p.root_hash, bytes(image.buf[p.hash_offset:]))


def test_verify_all_accepts_and_reports_progress(image: Image) -> None:
    seen: list[int] = []
    hashtree.verify_all(image.read, image.params, seen.append)
    assert seen == sorted(seen) and seen[-1] == image.params.data_size


def test_lazy_reads_every_block(image: Image) -> None:
    lazy = LazyVerifier(image.read, image.params)
    n = image.geometry.data_blocks
    for index in [*range(min(n, 70)), n - 1, n // 2]:
        assert lazy.read_block(index) == image.read(index * BS, BS)


def test_salt_matters(image: Image) -> None:
    p = image.params
    other = TreeParams(p.data_size, p.hash_offset, BS, os.urandom(32), p.root_hash)
    with pytest.raises(IntegrityError):
        hashtree.verify_all(image.read, other)
    with pytest.raises(IntegrityError):
        LazyVerifier(image.read, other).read_block(0)


# ---------------------------------------------------------------------------- tampering


def test_every_flip_is_caught(image: Image) -> None:
    n = image.geometry.data_blocks
    offsets = flip_offsets(image)
    assert len(offsets) >= 12
    for offset, where in offsets:
        bit = offset % 8
        affected = image.data_block_of(offset)
        image.flip(offset, bit)
        try:
            with pytest.raises(IntegrityError) as info:
                hashtree.verify_all(image.read, image.params)
            if where == "data":
                assert str(info.value).startswith(f"rootfs data block {affected} does not match")
            with pytest.raises(IntegrityError):
                LazyVerifier(image.read, image.params).read_block(affected)
            # blocks off the altered path still read: the verifier pins down the damage
            outside = [b for b in (0, n - 1, n // 2) if b not in image.subtree(offset)]
            lazy = LazyVerifier(image.read, image.params)
            for block in outside:
                assert lazy.read_block(block) == image.read(block * BS, BS), (offset, where)
        finally:
            image.flip(offset, bit)
    hashtree.verify_all(image.read, image.params)  # restored


def test_wrong_root_hash_refused(image: Image) -> None:
    p = image.params
    for root in (bytes(48), bytes([p.root_hash[0] ^ 1]) + p.root_hash[1:],
                 hashlib.sha384(b"other").digest()):
        wrong = TreeParams(p.data_size, p.hash_offset, BS, p.salt, root)
        with pytest.raises(IntegrityError, match="does not match the signed root hash"):
            hashtree.verify_all(image.read, wrong)
        lazy = LazyVerifier(image.read, wrong)
        with pytest.raises(IntegrityError, match="signed root hash"):
            lazy.read_block(0)
        with pytest.raises(IntegrityError):
            lazy.read_block(image.geometry.data_blocks - 1)


def test_swapped_blocks_caught() -> None:
    img = make_image(65)
    a, b = img.read(3 * BS, BS), img.read(64 * BS, BS)
    img.buf[3 * BS:4 * BS], img.buf[64 * BS:65 * BS] = b, a
    with pytest.raises(IntegrityError, match="data block 3 does not match"):
        hashtree.verify_all(img.read, img.params)
    lazy = LazyVerifier(img.read, img.params)
    for index in (3, 64):
        with pytest.raises(IntegrityError, match=f"data block {index} does not match"):
            lazy.read_block(index)
    assert lazy.read_block(4) == img.read(4 * BS, BS)


def test_a_tree_from_another_image_is_refused() -> None:
    one, two = make_image(65, salt=bytes(32)), make_image(65, salt=bytes(32))
    mixed = Image(one.buf[:one.params.data_size] + two.buf[two.params.hash_offset:], one.params)
    with pytest.raises(IntegrityError):
        hashtree.verify_all(mixed.read, mixed.params)
    with pytest.raises(IntegrityError):
        LazyVerifier(mixed.read, mixed.params).read_block(0)


@pytest.mark.parametrize("cut", [1, BS, SLOT])
def test_truncated_image_refused(cut: int) -> None:
    img = make_image(65)
    short = Image(img.buf[:-cut], img.params)
    with pytest.raises(IntegrityError):
        hashtree.verify_all(short.read, short.params)
    data_only = Image(img.buf[:img.params.data_size - cut], img.params)
    with pytest.raises(IntegrityError, match="shorter than its manifest"):
        hashtree.verify_all(data_only.read, data_only.params)
    with pytest.raises(IntegrityError):
        LazyVerifier(data_only.read, data_only.params).read_block(64)


@pytest.mark.parametrize("index", [-1, 65, 10**9])
def test_block_outside_the_image_refused(index: int) -> None:
    img = make_image(65)
    with pytest.raises(IntegrityError, match=f"rootfs block {index} is outside the image"):
        LazyVerifier(img.read, img.params).read_block(index)


def test_lazy_verifier_does_not_trust_a_cached_data_block() -> None:
    """Hash blocks are cached once verified; data blocks are checked on every read."""
    img = make_image(2)
    lazy = LazyVerifier(img.read, img.params)
    assert lazy.read_block(1)
    img.flip(BS + 5, 0)
    with pytest.raises(IntegrityError, match="data block 1"):
        lazy.read_block(1)
    assert lazy.read_block(0)


def test_storage_that_changes_between_reads_gains_nothing() -> None:
    """Tampered data plus a forged level-0 hash on the first read, genuine hash after."""
    data = os.urandom(BS * 200)
    salt = os.urandom(32)
    root, tree = hashtree.build(lambda o, n: data[o:o + n], len(data), salt, BS)
    params = TreeParams(len(data), len(data), BS, salt, root)
    evil = b"EVIL EVIL EVIL!!" + data[16:BS]
    forged_slot = hashlib.sha384(salt + evil).digest() + bytes(16)
    forged_tree = forged_slot + tree[64:]
    genuine_image = data + tree
    evil_image = evil + data[BS:] + forged_tree
    reads: dict[int, int] = {}

    def read(offset: int, size: int) -> bytes:
        if offset >= len(data):
            reads[offset] = reads.get(offset, 0) + 1
            first = reads[offset] == 1
            return (evil_image if first else genuine_image)[offset:offset + size]
        return evil_image[offset:offset + size]

    with pytest.raises(IntegrityError):
        hashtree.verify_all(read, params)
    reads.clear()
    hashtree.verify_all(lambda o, n: _count(reads, o, genuine_image[o:o + n], len(data)),
                        params)
    tree_blocks = len(tree) // BS
    assert len(reads) == tree_blocks and set(reads.values()) == {1}  # each read once


def _count(reads: dict[int, int], offset: int, chunk: bytes, data_size: int) -> bytes:
    if offset >= data_size:
        reads[offset] = reads.get(offset, 0) + 1
    return chunk
