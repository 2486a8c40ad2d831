"""Shared fixtures: a factory and provisioned virtual gateways, made for real.

``EDGEWARD_REQUIRE_REAL=1`` (set by .ci/run) turns every skip for a missing
tool or kernel feature into a failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.board import mounts
from edgeward.board.virtual import VirtualBoard
from edgeward.factory import station
from edgeward.factory.provision import provision
from edgeward.release import rootfs
from edgeward.trust.manifest import peek_kernel_bundle

REQUIRE_REAL = os.environ.get("EDGEWARD_REQUIRE_REAL") == "1"
NOW = dt.datetime.now(dt.UTC)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run scripts/bootstrap)"
        if REQUIRE_REAL:
            pytest.fail(message + " and EDGEWARD_REQUIRE_REAL=1")
        pytest.skip(message)
    return path


def require_root(why: str) -> None:
    """Skip (fail under EDGEWARD_REQUIRE_REAL) unless running as root, saying ``why``."""
    if os.geteuid() != 0:
        if REQUIRE_REAL:
            pytest.fail(f"{why} needs root and EDGEWARD_REQUIRE_REAL=1")
        pytest.skip(f"{why} needs root")


@pytest.fixture(scope="session")
def factory_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("mksquashfs")
    root = tmp_path_factory.mktemp("factory-template") / "factory"
    station.init(root, "ew-gw1", "Test Gateways Ltd", "1.0.0", 1, None, NOW)
    return root


@pytest.fixture
def factory(factory_template: Path, tmp_path: Path) -> station.Factory:
    """A private copy of a factory (records and escrow are per test)."""
    root = tmp_path / "factory"
    shutil.copytree(factory_template, root)
    return station.open_factory(root)


@pytest.fixture
def gateway(factory: station.Factory, tmp_path: Path) -> Iterator[VirtualBoard]:
    device = tmp_path / "gw-0001"
    provision(factory, device, "gw-0001", None, NOW)
    board = VirtualBoard.open(device)
    yield board
    board.power_off()  # its data area is mounted: take it down with the test


@pytest.fixture(scope="session", autouse=True)
def _no_data_area_left_mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Whatever a test left running, no gateway's data area made in this session outlives
    it (those of a demo or another run beside it are not this session's to take down)."""
    yield
    for base in (tmp_path_factory.getbasetemp(), *SCRATCH):
        _power_off_under(base)
        mounts.unmount_under(base)  # anything else of ours: an app image, a stray data area
        _stop_chips_under(base)


@pytest.fixture(autouse=True)
def _boards_off_after_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The boards a test left on in its temp dir are powered off when it ends, so a run's
    data areas (a loop device each) do not pile up until the session's end."""
    yield
    where = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") \
        else None
    if isinstance(where, Path):
        _power_off_under(where)


def _power_off_under(base: Path) -> None:
    for point in mounts.mounts_under(base):
        if point.name == "data" and (point.parent / "flash" / "data.img").exists():
            VirtualBoard(point.parent).power_off()


def _stop_chips_under(base: Path) -> None:
    """The software TPMs of this session's boards (each runs in a session of its own)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"swtpm") and any(str(base).encode() in a for a in argv):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


SCRATCH: list[Path] = []


def scratch_dir(prefix: str) -> Path:
    """A new directory under /var/tmp, for gateways whose apps' users must reach their data
    area (pytest's temporary directories are 0700); this session's to clean up."""
    where = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    where.chmod(0o755)  # the way to the gateways: apps' users pass it
    SCRATCH.append(where)
    return where


def remove_scratch(where: Path) -> None:
    """Power off the boards in a scratch directory, then delete it. Deleting first would
    empty a mounted data area and delete its image, leaving the mount (and its loop
    device) behind with nothing left to say whose board it was."""
    _power_off_under(where)
    mounts.unmount_under(where)
    _stop_chips_under(where)
    shutil.rmtree(where, ignore_errors=True)


def slot_a_rootfs(board: VirtualBoard) -> rootfs.SealedRootfs:
    """Slot A's rootfs as the kernel bundle describes it, to sign other bundles over it."""
    genuine = peek_kernel_bundle(board.read("kernel_a") or b"")
    return rootfs.SealedRootfs(board.partition_path("rootfs_a"), genuine.rootfs,
                               genuine.rootfs_size)
