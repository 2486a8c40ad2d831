"""A/B slots with try-boot and boot count, and anti-rollback against the fused counter."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device.boot.chain import boot
from edgeward.device.boot.slots import commit, stage_try
from edgeward.errors import FuseError, StateError
from edgeward.factory.station import Factory
from edgeward.release import rootfs
from edgeward.release.osimage import make_bl2, make_kernel_bundle


def write_slot_b(board: VirtualBoard, factory: Factory, tmp_path: Path, version: str,
                 security_version: int = 1, limit: int = 3) -> None:
    sealed = rootfs.build(tmp_path / f"rootfs-{version}.img", version, "ew-gw1",
                          security_version)
    board.write("rootfs_b", sealed.path)
    board.write("kernel_b", make_kernel_bundle(version, security_version, "ew-gw1", sealed,
                                               factory.key("kernel", None)))
    env = board.read_env()
    assert env is not None
    board.write_env(stage_try(env, "b", limit))


def test_new_slot_boots_on_trial_and_stays_after_commit(
        gateway: VirtualBoard, factory: Factory, tmp_path: Path) -> None:
    write_slot_b(gateway, factory, tmp_path, "1.1.0")
    report = boot(gateway)
    assert (report.verdict, report.slot, report.versions["kernel"]) == ("booted", "b", "1.1.0")
    env = gateway.read_env()
    assert env is not None and env.try_boot and env.boot_count == 1
    gateway.write_env(commit(env, "b"))
    for _ in range(5):
        report = boot(gateway)
        assert (report.verdict, report.slot, report.fallback) == ("booted", "b", "")


def test_uncommitted_slot_falls_back_after_the_boot_limit(
        gateway: VirtualBoard, factory: Factory, tmp_path: Path) -> None:
    write_slot_b(gateway, factory, tmp_path, "1.1.0", limit=3)
    for attempt in range(1, 4):  # booted, but no health check commits it
        report = boot(gateway)
        assert report.slot == "b", attempt
    report = boot(gateway)
    assert (report.verdict, report.slot) == ("booted", "a")
    assert "not committed after 3 boot(s)" in report.fallback
    env = gateway.read_env()
    assert env is not None and not env.try_boot and env.active == "a"
    assert "fell back" in env.last_fallback


def test_broken_new_slot_is_refused_n_times_then_the_old_slot_boots(
        gateway: VirtualBoard, factory: Factory, tmp_path: Path) -> None:
    write_slot_b(gateway, factory, tmp_path, "1.1.0", limit=2)
    path = gateway.partition_path("rootfs_b")
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    for _ in range(2):
        report = boot(gateway)
        assert (report.verdict, report.refused_stage, report.slot) == ("refused", "kernel", "b")
    report = boot(gateway)
    assert (report.verdict, report.slot, report.versions["kernel"]) == ("booted", "a", "1.0.0")
    assert report.fallback


def test_committed_slot_is_never_replaced_by_a_fallback(gateway: VirtualBoard) -> None:
    """Tampering with the committed slot refuses the boot: it never silently boots B."""
    path = gateway.partition_path("kernel_a")
    path.write_bytes(path.read_bytes()[:-10])
    report = boot(gateway)
    assert report.refused_stage == "bl2" and not report.fallback


def test_cannot_stage_or_commit_the_wrong_slot(gateway: VirtualBoard) -> None:
    env = gateway.read_env()
    assert env is not None
    with pytest.raises(StateError):
        stage_try(env, "a")
    with pytest.raises(StateError):
        commit(env, "a")  # already committed


def test_corrupt_boot_environment_copy_falls_back_to_the_other(gateway: VirtualBoard) -> None:
    env = gateway.read_env()
    assert env is not None
    gateway.write_env(env)  # now both copies exist
    newest = max((gateway.root / "flash").glob("bootenv.*"), key=lambda p: p.stat().st_mtime)
    newest.write_bytes(newest.read_bytes()[:20])  # a torn copy
    assert boot(gateway).verdict == "booted"
    for copy in (gateway.root / "flash").glob("bootenv.*"):
        copy.write_bytes(b"garbage")
    report = boot(gateway)
    assert report.refused_stage == "bl2" and "boot environment" in report.reason


# --- anti-rollback -------------------------------------------------------------------------


def test_kernel_below_the_fused_counter_is_refused_even_with_a_current_bl2(
        gateway: VirtualBoard, factory: Factory) -> None:
    gateway.write("bl2", make_bl2("2.0.0", 3, "ew-gw1", [factory.key("kernel", None)],
                                  factory.key("boot-root", None)))
    gateway.advance_security_version(3)
    gateway.advance_security_version(3, "os_security_version")
    report = boot(gateway)
    assert report.refused_stage == "bl2"
    assert "kernel bundle security version 1 is below the fused counter 3" in report.reason


def test_release_at_the_fused_counter_boots_and_older_cannot_return(
        gateway: VirtualBoard, factory: Factory, tmp_path: Path) -> None:
    kernel_key, root_key = factory.key("kernel", None), factory.key("boot-root", None)
    gateway.write("bl2", make_bl2("2.0.0", 2, "ew-gw1", [kernel_key], root_key))
    write_slot_b(gateway, factory, tmp_path, "2.0.0", security_version=2)
    assert boot(gateway).slot == "b"
    env = gateway.read_env()
    assert env is not None
    gateway.write_env(commit(env, "b"))
    gateway.advance_security_version(2)  # committing a release that raised it burns it
    gateway.advance_security_version(2, "os_security_version")
    assert boot(gateway).verdict == "booted"
    # slot A still holds 1.0.0 (security version 1): staging it back is refused at boot
    env = gateway.read_env()
    assert env is not None
    gateway.write_env(stage_try(env, "a", 1))
    report = boot(gateway)
    assert report.refused_stage == "bl2" and "below the fused counter 2" in report.reason
    assert boot(gateway).slot == "b"  # and the device falls back to the current release


def test_fused_counter_never_goes_down(gateway: VirtualBoard) -> None:
    gateway.advance_security_version(4)
    with pytest.raises(FuseError, match="cannot go down"):
        gateway.advance_security_version(3)
    assert gateway.fuses().security_version == 4
