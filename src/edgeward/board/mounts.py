"""What is mounted where (``/proc/self/mountinfo``), and taking it down.

A power cut takes every mount with it: the virtual board models that by
unmounting whatever lies under its data mount point, deepest first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from edgeward.errors import ToolError

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest (and latest) first."""
    base = os.path.realpath(path)
    found = []
    for line in MOUNTINFO.read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == base or point.startswith(base + "/"):
            found.append(Path(point))
    return list(reversed(found))


def _program(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise ToolError(f"{name} not found (run scripts/bootstrap)")
    return tool


def run(name: str, *args: str, timeout: float = 120) -> None:
    """Run a filesystem program (mount, umount, mkfs.ext4); ToolError naming it and
    saying what it printed if it is missing or fails."""
    try:
        subprocess.run([_program(name), *args], check=True, capture_output=True,
                       timeout=timeout)
    except subprocess.CalledProcessError as e:
        raise ToolError(f"{name} failed: {e.stderr.decode(errors='replace').strip()}") from e


def mount(source: Path, point: Path, fstype: str, options: str) -> None:
    """Mount ``source`` (an image: ``options`` has ``loop``) at ``point``, unless
    something already is."""
    if not os.path.ismount(point):
        run("mount", "-t", fstype, "-o", options, str(source), str(point))


def _umount(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([_program("umount"), *args], capture_output=True, timeout=60,
                          check=False)


def unmount(point: Path) -> None:
    """Unmount ``point``; if something still holds it, detach it (as a power cut would)."""
    if _umount(str(point)).returncode == 0:
        return
    done = _umount("-l", str(point))
    if done.returncode != 0 and os.path.ismount(point):
        raise ToolError(f"cannot unmount {point}: {done.stderr.decode(errors='replace').strip()}")


def unmount_under(path: Path) -> None:
    for point in mounts_under(path):
        unmount(point)
