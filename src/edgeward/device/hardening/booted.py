"""The audit of a virtual gateway: the rootfs and kernel command line its last boot
verified, its fuses, the sockets listening beside it.

On a real gateway the audit reads ``/`` and ``/proc/cmdline``. A virtual gateway's
root filesystem is a squashfs in a flash slot: the audit takes the slot the last
boot in this power cycle chose, checks that its kernel bundle is the one that boot
measured, copies the rootfs aside, checks the copy against the bundle's hash tree
(what the kernel's verity root does) and mounts that copy read-only, unmounting it
whatever happens. A boot the OS stage refused (an open debug port) had still verified
its rootfs: the audit runs, and says why the boot was refused.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgeward.board import mounts
from edgeward.board.base import Board, kernel_partition, rootfs_partition
from edgeward.device.boot.chain import last_boot
from edgeward.device.hardening import collect
from edgeward.device.hardening.checks import audit
from edgeward.device.hardening.finding import Finding
from edgeward.device.hardening.services import Allowed
from edgeward.errors import IntegrityError, StateError
from edgeward.files import write_atomic
from edgeward.trust.hashtree import verify_all
from edgeward.trust.manifest import KernelBundle, peek_kernel_bundle

CHUNK = 1 << 20
MOUNT_OPTIONS = "loop,ro,nodev,nosuid,noexec"


def _measured(report: dict[str, Any], stage: str) -> str | None:
    return next((e.get("digest") for e in report["events"]
                 if isinstance(e, dict) and e.get("stage") == stage), None)


def booted_bundle(board: Board) -> tuple[str, KernelBundle]:
    """The slot the last boot chose and its kernel bundle, as that boot measured it."""
    report = last_boot(board)
    if report is None:
        raise StateError("no boot in this power cycle: boot the gateway first")
    slot = report["slot"]
    if _measured(report, "kernel") is None:
        raise StateError(f"the last boot was refused at {report.get('refused_stage')} "
                         "before it verified a rootfs: there is no system to audit")
    bundle = peek_kernel_bundle(board.read(kernel_partition(slot)) or b"")
    if bundle.digest != _measured(report, "bl2"):
        raise IntegrityError(f"kernel slot {slot} changed since the boot measured it: "
                             "boot again")
    return slot, bundle


def _copy(board: Board, slot: str, out: Path) -> None:
    with board.reader(rootfs_partition(slot)) as source:
        if source is None:
            raise StateError(f"rootfs slot {slot} is empty")
        read, size = source
        write_atomic(out, (read(at, min(CHUNK, size - at)) for at in range(0, size, CHUNK)),
                     mode=0o600)


@contextmanager
def verified_root(board: Board) -> Iterator[tuple[Path, str]]:
    """The booted rootfs mounted read-only, and the kernel command line it booted with."""
    slot, bundle = booted_bundle(board)
    with tempfile.TemporaryDirectory(prefix="edgeward-audit-") as tmp:
        image, point = Path(tmp) / "rootfs.img", Path(tmp) / "root"
        _copy(board, slot, image)
        if image.stat().st_size != bundle.rootfs_size:
            raise IntegrityError(f"rootfs slot {slot} is not the size its signed manifest "
                                 "says")
        fd = os.open(image, os.O_RDONLY)
        try:
            verify_all(lambda offset, n: os.pread(fd, n, offset), bundle.rootfs)
        finally:
            os.close(fd)
        point.mkdir()
        mounts.mount(image, point, "squashfs", MOUNT_OPTIONS)
        try:
            yield point, bundle.cmdline
        finally:
            mounts.unmount(point)


def _board_processes(board: Board) -> list[int]:
    """The virtual board's own hardware (its software TPM) is not a service of the OS."""
    raw = board.ram_read("tpm")  # "port pid", while the board's TPM is powered
    words = raw.decode(errors="replace").split() if raw else []
    return [int(words[1])] if len(words) == 2 and words[1].isdigit() else []


def audit_board(board: Board, allowed: Iterable[Allowed] = ()) -> list[Finding]:
    """The hardening audit of a (virtual) gateway after a boot in this power cycle."""
    listeners = collect.listening(exclude_pids=_board_processes(board))
    with verified_root(board) as (root, cmdline):
        inputs = collect.from_root(root, cmdline, board.fuses(), listeners, allowed)
    return audit(inputs)

