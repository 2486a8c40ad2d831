"""Rebuilding a rootfs from the current slot and a ``zstd --patch-from`` delta.

A delta carries the squashfs data only: the base is the booted slot's data (the
size its kernel bundle signs), and the hash tree is rebuilt here from the new
data and the salt the new (TUF-verified) kernel bundle names. The result is
then checked whole against the rootfs target's signed SHA-384.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

from edgeward.errors import IntegrityError, ToolError
from edgeward.files import prefix_chunks, write_atomic
from edgeward.trust import hashtree
from edgeward.trust.hashtree import TreeParams

ZSTD_LONG = "--long=31"


def affordable(base: Path, meminfo: Path = Path("/proc/meminfo")) -> bool:
    """Whether zstd can hold the base as its dictionary: its memory grows with the
    image (about twice the base), unlike the full-image path. If not, take the full
    image instead."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return base.stat().st_size * 2 < int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return False
    return False


def rebuild(base: Path, base_data_size: int, delta: Path, params: TreeParams, out: Path
            ) -> None:
    """The full sealed rootfs (data + hash tree) at ``out``, from the booted slot's data
    and a data-only delta."""
    work = out.with_name(out.name + ".data")
    base_copy = out.with_name(out.name + ".base")
    try:
        write_atomic(base_copy, prefix_chunks(base, base_data_size), mode=0o600)
        apply(base_copy, delta, work)
        if work.stat().st_size != params.data_size:
            raise IntegrityError(f"the delta rebuilt {work.stat().st_size} bytes of rootfs "
                                 f"data; the signed kernel bundle says {params.data_size}")
        with work.open("rb") as f:
            fd = f.fileno()
            root, tree = hashtree.build(lambda off, n: os.pread(fd, n, off), params.data_size,
                                        params.salt, params.block_size)
        if root != params.root_hash:
            raise IntegrityError("the rebuilt rootfs does not have the signed root hash")
        write_atomic(out, itertools.chain(prefix_chunks(work, params.data_size), [tree]),
                     mode=0o600)
    finally:
        work.unlink(missing_ok=True)
        base_copy.unlink(missing_ok=True)


def apply(base: Path, delta: Path, out: Path) -> None:
    tool = shutil.which("zstd")
    if tool is None:
        raise ToolError("zstd not found (Debian package zstd)")
    cmd = [tool, "-q", "-d", "-f", ZSTD_LONG, "--memory=2048MB", f"--patch-from={base}",
           str(delta), "-o", str(out)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
    except subprocess.CalledProcessError as e:
        out.unlink(missing_ok=True)
        raise ToolError("the delta does not apply to this slot: "
                        f"{e.stderr.decode(errors='replace').strip()}") from e
