"""Rebuilding a rootfs from the current slot and a ``zstd --patch-from`` delta."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from edgeward.errors import ToolError

ZSTD_LONG = "--long=31"


def sha384_file(path: Path) -> str:
    h = hashlib.sha384()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


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
