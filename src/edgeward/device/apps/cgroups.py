"""Resource limits for an app, in a cgroup of its own: cgroup v2, or v1 where the host
has that (one directory per controller).

The app's cgroup is made below the agent's own (``/proc/self/cgroup``), so the
agent never needs more of the hierarchy than it was given.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import NotAvailable

ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class AppCgroup:
    paths: tuple[Path, ...]  # one (v2) or one per controller (v1)
    version: int

    @property
    def procs(self) -> tuple[Path, ...]:
        return tuple(p / "cgroup.procs" for p in self.paths)


def _own(controller: str) -> str:
    """This process's cgroup path for ``controller`` ("" for the v2 unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if names.split(",") == [controller] or (controller == "" and names == ""):
            return path
        if controller and controller in names.split(","):
            return path
    raise NotAvailable(f"this host has no {controller or 'unified'} cgroup")


def version(root: Path = ROOT) -> int:
    return 2 if (root / "cgroup.controllers").exists() else 1


def create(app: str, memory: int, cpu: float, pids: int, root: Path = ROOT) -> AppCgroup:
    """Make (or reset) the app's cgroup with its limits."""
    name = f"edgeward-app-{app}"
    if version(root) == 2:
        base = root / _own("").lstrip("/")
        path = base / name
        path.mkdir(exist_ok=True)
        _write(path / "memory.max", str(memory))
        _write(path / "memory.swap.max", "0", optional=True)
        _write(path / "pids.max", str(pids))
        _write(path / "cpu.max", f"{int(cpu * CPU_PERIOD_US)} {CPU_PERIOD_US}")
        return AppCgroup((path,), 2)
    paths = []
    # v1 keeps memory <= memory+swap at every step: raise memsw first, lower it last
    memsw = ("memory.memsw.limit_in_bytes", str(memory), True)
    for controller, settings in (
            ("memory", [memsw, ("memory.limit_in_bytes", str(memory), False), memsw]),
            ("pids", [("pids.max", str(pids), False)]),
            ("cpu", [("cpu.cfs_period_us", str(CPU_PERIOD_US), False),
                     ("cpu.cfs_quota_us", str(int(cpu * CPU_PERIOD_US)), False)])):
        path = root / controller / _own(controller).lstrip("/") / name
        path.mkdir(exist_ok=True)
        for key, value, optional in settings:
            _write(path / key, value, optional)
        paths.append(path)
    return AppCgroup(tuple(paths), 1)


def existing(app: str, root: Path = ROOT) -> AppCgroup:
    """The app's cgroup as :func:`create` places it (whether or not it exists now)."""
    name = f"edgeward-app-{app}"
    if version(root) == 2:
        return AppCgroup((root / _own("").lstrip("/") / name,), 2)
    return AppCgroup(tuple(root / c / _own(c).lstrip("/") / name
                           for c in ("memory", "pids", "cpu")), 1)


def remove(group: AppCgroup) -> None:
    for path in group.paths:
        with contextlib.suppress(OSError):  # still busy: the supervisor stops it first
            path.rmdir()


def _write(path: Path, value: str, optional: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        if optional:
            return
        raise NotAvailable(f"cannot set {path.name} on {path.parent}: "
                           f"{os.strerror(e.errno or 0)}") from e
