"""VirtualBoard: fuse semantics through the board, HUK lock, atomic flash under a real crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device.boot.chain import boot
from edgeward.errors import FuseError


def test_fuses_are_write_once_and_one_way(tmp_path: Path) -> None:
    board = VirtualBoard.create(tmp_path / "dev")
    board.burn("root_key_hash", bytes([0x0F]) * 48)
    with pytest.raises(FuseError, match="already burnt"):
        board.burn("root_key_hash", bytes([0xFF]) * 48)  # 0 -> 1 only, but write-once
    board.burn("debug_disable", b"\x01")
    with pytest.raises(FuseError):
        board.burn("debug_disable", b"\x00")
    assert board.fuses().root_key_hash == bytes([0x0F]) * 48
    assert board.fuses().debug_disable


def test_huk_is_readable_until_locked_and_locked_after_boot(gateway: VirtualBoard) -> None:
    # provisioning booted the gateway: its HUK is locked in this power cycle
    with pytest.raises(FuseError, match="locked until the next reset"):
        gateway.read_huk()
    gateway.power_on()
    huk = gateway.read_huk()  # after reset, before the OS stage: readable (by BL2/OS stage)
    assert len(huk) == 32 and huk != bytes(32)
    assert boot(gateway).verdict == "booted"
    assert gateway.huk_locked()
    with pytest.raises(FuseError):
        gateway.read_huk()


def test_huk_differs_between_gateways(factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgeward.factory.provision import provision
    from tests.conftest import NOW

    hukes = set()
    for serial in ("a-1", "a-2"):
        provision(factory, tmp_path / serial, serial, None, NOW)
        board = VirtualBoard.open(tmp_path / serial)
        board.power_on()
        hukes.add(board.read_huk())
    assert len(hukes) == 2


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from edgeward.files import write_atomic

    target, marker = Path(sys.argv[1]), Path(sys.argv[2])

    def chunks():
        for i in range(10_000):
            yield bytes([i % 251]) * (1 << 20)
            if i == 8:
                marker.write_text("half written")
                time.sleep(60)  # killed here, in the middle of the write

    write_atomic(target, chunks(), mode=0o600)
""")


def crash_in_the_middle_of_writing(target: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert child.poll() is None, "writer died before the crash point"
            assert time.monotonic() < deadline, "writer never reached the crash point"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("partition", ["rootfs_a", "kernel_a", "bl2", "rootfs_b"])
def test_crash_during_a_flash_write_leaves_a_bootable_device(
        gateway: VirtualBoard, tmp_path: Path, partition: str) -> None:
    path = gateway.partition_path(partition)
    before = path.read_bytes() if path.exists() else None
    crash_in_the_middle_of_writing(path, tmp_path)
    leftovers = list(path.parent.glob(f".{path.name}.tmp-*"))
    assert leftovers, "the write should have been in progress"
    assert (path.read_bytes() if path.exists() else None) == before  # never torn
    report = boot(gateway)  # power on again
    assert report.verdict == "booted", report.reason
    assert not list(path.parent.glob(".*.tmp-*"))  # power-on cleans what the crash left


def test_the_boot_clears_what_interrupted_writes_left_in_the_agents_data(
        gateway: VirtualBoard) -> None:
    state = gateway.data_dir / "edgeward" / "tuf"
    state.mkdir(parents=True)
    stale = [state / ".timestamp.json.tmp-1a2b3c4d", gateway.data_dir / "edgeward" /
             ".update.json.tmp-deadbeef"]
    for path in stale:
        path.write_bytes(b"half")
    kept = state / "timestamp.json"
    kept.write_bytes(b"whole")
    assert boot(gateway).verdict == "booted"  # the data area is unlocked again, and swept
    assert not any(p.exists() for p in stale) and kept.read_bytes() == b"whole"
