"""The tamper battery: every altered image, signature or fuse is refused at its stage.

Flash and fuses are altered the way an attacker with the board on a bench
would (bytes rewritten in place); the boot must stop at the stage that checks
what was altered, and nothing after that stage may run.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edgeward.board import fuses
from edgeward.board.virtual import VirtualBoard
from edgeward.device.attest import quote
from edgeward.device.boot.chain import boot
from edgeward.errors import AttestationError
from edgeward.factory.station import Factory
from edgeward.release import rootfs
from edgeward.release.osimage import make_bl2, make_kernel_bundle
from edgeward.trust import keys
from edgeward.trust.hashtree import TreeParams
from edgeward.trust.manifest import peek_kernel_bundle
from tests.conftest import slot_a_rootfs

STAGE_OF = {"bl2": "rom", "kernel_a": "bl2", "rootfs_a": "kernel"}
ORDER = ["rom", "bl2", "kernel", "os"]


def offsets(size: int, count: int = 48, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    fixed = [0, 1, size // 2, size - 2, size - 1]
    return sorted(set(fixed + [rng.randrange(size) for _ in range(count)]))


def assert_refused_at(board: VirtualBoard, stage: str) -> str:
    report = boot(board)
    assert report.verdict == "refused", f"boot went through, expected refusal at {stage}"
    assert report.refused_stage == stage, (report.refused_stage, report.reason)
    ran = [s.name for s in report.stages]
    assert ran == ORDER[: ORDER.index(stage) + 1], ran  # nothing after the refusing stage
    assert [e.stage for e in report.events] == ORDER[: ORDER.index(stage)]
    assert board.huk_locked()  # a refused boot leaves the HUK locked too
    with pytest.raises(AttestationError):
        quote(board, bytes(32))
    return report.reason


def flip(path: Path, offset: int, mask: int) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[offset] ^= mask
    path.write_bytes(bytes(data))
    return original


@pytest.mark.parametrize("partition", ["bl2", "kernel_a"])
def test_byte_flips_in_signed_images_are_refused(gateway: VirtualBoard, partition: str) -> None:
    path = gateway.partition_path(partition)
    size = path.stat().st_size
    for i, offset in enumerate(offsets(size)):
        original = flip(path, offset, (0x01, 0x80, 0xFF, 0x20)[i % 4])
        try:
            assert_refused_at(gateway, STAGE_OF[partition])
        finally:
            path.write_bytes(original)
    assert boot(gateway).verdict == "booted"  # the battery restored every byte


def test_byte_flips_in_rootfs_data_and_hash_tree_are_refused(gateway: VirtualBoard) -> None:
    path = gateway.partition_path("rootfs_a")
    bundle = peek_kernel_bundle(gateway.read("kernel_a") or b"")
    size = path.stat().st_size
    cases = [*offsets(size, 40), bundle.rootfs.hash_offset, bundle.rootfs.hash_offset - 1]
    for offset in sorted(set(cases)):
        original = flip(path, offset, 0x01)
        try:
            reason = assert_refused_at(gateway, "kernel")
            assert "does not match" in reason or "padding" in reason
        finally:
            path.write_bytes(original)


def test_truncated_and_extended_rootfs_are_refused(gateway: VirtualBoard) -> None:
    path = gateway.partition_path("rootfs_a")
    original = path.read_bytes()
    for altered in (original[:-4096], original + bytes(4096), original[:100]):
        path.write_bytes(altered)
        assert "bytes, the signed manifest says" in assert_refused_at(gateway, "kernel")
    path.write_bytes(original)


@pytest.mark.parametrize("mask", [0x01, 0xFF])
def test_signature_bytes_are_covered(gateway: VirtualBoard, mask: int) -> None:
    """Flip inside the base64 of each signature: the decoded signature changes."""
    for partition in ("bl2", "kernel_a"):
        path = gateway.partition_path(partition)
        data = path.read_bytes()
        at = data.index(b'"sig":"') + len(b'"sig":"') + 10
        original = flip(path, at, mask)
        try:
            assert_refused_at(gateway, STAGE_OF[partition])
        finally:
            path.write_bytes(original)


# --- images signed by the wrong key ------------------------------------------------


def test_bl2_signed_by_another_root_key_is_refused_by_rom(
        gateway: VirtualBoard, factory: Factory) -> None:
    kernel_key = factory.key("kernel", None)
    gateway.write("bl2", make_bl2("1.0.0", 1, "ew-gw1", [kernel_key], keys.generate()))
    assert "does not match the fused root key hash" in assert_refused_at(gateway, "rom")


def test_bl2_claiming_the_real_root_key_but_signed_by_another_is_refused(
        gateway: VirtualBoard, factory: Factory) -> None:
    genuine = gateway.read("bl2") or b""
    forged = make_bl2("1.0.0", 1, "ew-gw1", [keys.generate()], keys.generate())
    import json

    outer, real = json.loads(forged), json.loads(genuine)
    outer["root_key"] = real["root_key"]  # present the fused key, sign with another
    from edgeward.trust.canonical import canonical

    gateway.write("bl2", canonical(outer))
    assert "not signed by any trusted key" in assert_refused_at(gateway, "rom")


def test_kernel_signed_by_a_key_bl2_does_not_trust_is_refused(
        gateway: VirtualBoard, factory: Factory) -> None:
    sealed = slot_a_rootfs(gateway)
    gateway.write("kernel_a", make_kernel_bundle("1.0.0", 1, "ew-gw1", sealed, keys.generate()))
    assert "not signed by any trusted key" in assert_refused_at(gateway, "bl2")


def test_kernel_signed_with_ed25519_by_an_untrusted_key_is_refused(
        gateway: VirtualBoard) -> None:
    sealed = slot_a_rootfs(gateway)
    rogue = keys.generate(keys.Algorithm.ED25519)
    gateway.write("kernel_a", make_kernel_bundle("1.0.0", 1, "ew-gw1", sealed, rogue))
    assert_refused_at(gateway, "bl2")


def test_rootfs_replaced_by_another_valid_image_is_refused(
        gateway: VirtualBoard, tmp_path: Path) -> None:
    other = rootfs.build(tmp_path / "other.img", "6.6.6", "ew-gw1", 1,
                         extra={"usr/bin/backdoor": b"#!/bin/sh\nnc -l 4444\n"})
    gateway.write("rootfs_a", other.path)
    assert_refused_at(gateway, "kernel")


def test_signed_kernel_pointing_at_a_forged_root_hash_is_refused(
        gateway: VirtualBoard, factory: Factory) -> None:
    """A genuine kernel key signing a wrong root hash still cannot make a bad rootfs boot."""
    genuine = peek_kernel_bundle(gateway.read("kernel_a") or b"")
    p = genuine.rootfs
    wrong = TreeParams(p.data_size, p.hash_offset, p.block_size, p.salt, bytes(48))
    sealed = rootfs.SealedRootfs(gateway.partition_path("rootfs_a"), wrong, genuine.rootfs_size)
    gateway.write("kernel_a", make_kernel_bundle("1.0.0", 1, "ew-gw1", sealed,
                                                 factory.key("kernel", None)))
    assert "signed root hash" in assert_refused_at(gateway, "kernel")


# --- fuses ---------------------------------------------------------------------------


def _rewrite_fuses(board: VirtualBoard, offset: int, mask: int) -> None:
    path = board.root / "fuses.bin"
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("offset", [0, 1, 23, 47])
def test_rewritten_root_key_hash_is_refused_by_rom(gateway: VirtualBoard, offset: int) -> None:
    _rewrite_fuses(gateway, fuses.FIELDS["root_key_hash"][0] + offset, 0x04)
    assert "fused root key hash" in assert_refused_at(gateway, "rom")


@pytest.mark.parametrize("offset", [0, 15, 31])
def test_a_different_huk_cannot_unseal_the_data_key(gateway: VirtualBoard, offset: int) -> None:
    """The flash moved to another board (another HUK) gets no data key."""
    _rewrite_fuses(gateway, fuses.FIELDS["huk"][0] + offset, 0x10)
    assert "boot-bound keys do not open" in assert_refused_at(gateway, "os")


def test_open_debug_port_is_refused_by_os_stage(gateway: VirtualBoard) -> None:
    _rewrite_fuses(gateway, fuses.FIELDS["debug_disable"][0], 0x01)
    assert "debug port is open" in assert_refused_at(gateway, "os")


def test_cleared_write_lock_means_an_unprovisioned_board(gateway: VirtualBoard) -> None:
    _rewrite_fuses(gateway, fuses.LOCK_OFFSET, 1 << fuses.LOCK_BITS["root_key_hash"])
    assert "not provisioned" in assert_refused_at(gateway, "rom")


def test_corrupt_security_version_fuses_are_refused(gateway: VirtualBoard) -> None:
    _rewrite_fuses(gateway, fuses.FIELDS["security_version"][0], 0x04)  # 0b101: not a count
    report = boot(gateway)
    assert report.refused_stage == "rom" and "fuse bank" in report.reason


def test_higher_security_version_fused_refuses_the_older_image(gateway: VirtualBoard) -> None:
    gateway.advance_security_version(2)
    assert "below the fused counter 2" in assert_refused_at(gateway, "rom")


def test_kernel_for_another_model_signed_by_the_genuine_key_is_refused(
        gateway: VirtualBoard, factory: Factory) -> None:
    sealed = slot_a_rootfs(gateway)
    gateway.write("kernel_a", make_kernel_bundle("1.0.0", 1, "ew-other-model", sealed,
                                                 factory.key("kernel", None)))
    assert "is for model 'ew-other-model'" in assert_refused_at(gateway, "bl2")
