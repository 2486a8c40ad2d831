"""The update world bench/update_install.py runs in: tests/updates/world.py's.

A fleet server on 127.0.0.1 with an initialised TUF repository, a release
workspace of offline keys, a factory whose first release ships that TUF root,
and gateways provisioned from it, booted, enrolled and attested; and trees of
incompressible files to build releases from.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root
from tests.updates.world import MODEL, World, make, serve

__all__ = ["MODEL", "World", "machine", "random_tree", "world"]
MIB = 1 << 20


def random_tree(root: Path, size_mb: int, file_mb: int = 8) -> int:
    """``size_mb`` MiB of incompressible files under ``root``; returns the bytes written."""
    total = size_mb * MIB
    done, i = 0, 0
    while done < total:
        n = min(file_mb * MIB, total - done)
        path = root / "opt" / "payload" / f"blob-{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for off in range(0, n, MIB):
                f.write(os.urandom(min(MIB, n - off)))
        done, i = done + n, i + 1
    return done




def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "loadavg_1m": os.getloadavg()[0]}


@contextlib.contextmanager
def world(tmp: Path) -> Iterator[World]:
    """The same world the update tests use (tests/updates/world.py), made in ``tmp``;
    its server runs in this process (its own threads) until the block ends."""
    make(tmp, "Bench Gateways Ltd")
    with serve(tmp) as running:
        try:
            yield running
        finally:
            for board in running.boards.values():
                board.power_off()  # data areas unmounted before the temp dir goes
