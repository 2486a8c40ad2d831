"""Resource limits for an app, in a cgroup of its own: cgroup v2, or v1 where the host
has that (one directory per controller).

The app's cgroup is made below the agent's own (``/proc/self/cgroup``), so the
agent never needs more of the hierarchy than it was given. The egress filter is a
cgroup v2 BPF program: on a v1 host with the unified hierarchy mounted beside it
(``/sys/fs/cgroup/unified``) the app gets a v2 cgroup there as well, for that alone.

:func:`counters` reads the limit events (an OOM kill, a fork refused at the pids
limit) that the supervisor turns into reports.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import NotAvailable

ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "pids", "cpu")  # one hierarchy each, in this order


@dataclass(frozen=True)
class AppCgroup:
    paths: tuple[Path, ...]  # one (v2) or one per controller (v1), and the v2 one for BPF
    version: int
    unified: Path | None = None  # the v2 cgroup the egress filter attaches to

    @property
    def procs(self) -> tuple[Path, ...]:
        return tuple(p / "cgroup.procs" for p in self.paths)

    def members(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs:
            with contextlib.suppress(OSError, ValueError):
                found |= {int(line) for line in procs.read_text().split()}
        return found


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


def _name(app: str) -> str:
    return f"edgeward-app-{app}"


def _unified(app: str, root: Path) -> Path | None:
    """The v2 directory for the app on a v1 host (None where there is no unified
    hierarchy beside v1)."""
    hybrid = root / "unified"
    if not (hybrid / "cgroup.procs").exists():
        return None
    return hybrid / _own("").lstrip("/") / _name(app)


def create(app: str, memory: int, cpu: float, pids: int, root: Path = ROOT) -> AppCgroup:
    """Make (or reset) the app's cgroup with its limits."""
    group = existing(app, root)
    if group.version == 2:
        path = group.paths[0]
        delegate(path.parent)
        path.mkdir(exist_ok=True)
        _write(path / "memory.max", str(memory))
        _write(path / "memory.swap.max", "0", optional=True)
        _write(path / "pids.max", str(pids))
        _write(path / "cpu.max", f"{int(cpu * CPU_PERIOD_US)} {CPU_PERIOD_US}")
        return group
    # v1 keeps memory <= memory+swap at every step: raise memsw first, lower it last
    memsw = ("memory.memsw.limit_in_bytes", str(memory), True)
    settings = {"memory": [memsw, ("memory.limit_in_bytes", str(memory), False), memsw],
                "pids": [("pids.max", str(pids), False)],
                "cpu": [("cpu.cfs_period_us", str(CPU_PERIOD_US), False),
                        ("cpu.cfs_quota_us", str(int(cpu * CPU_PERIOD_US)), False)]}
    for controller, path in zip(V1_CONTROLLERS, group.paths, strict=False):
        path.mkdir(exist_ok=True)
        for key, value, optional in settings[controller]:
            _write(path / key, value, optional)
    if group.unified is not None:
        group.unified.mkdir(exist_ok=True)
    return group


CONTROLLERS = ("memory", "pids", "cpu")
AGENT_LEAF = "edgeward-agent"


def delegate(base: Path) -> None:
    """Make the agent's own cgroup (v2; systemd's ``Delegate=yes``) able to give its app
    cgroups the memory, pids and cpu controllers: v2 lets a cgroup hand controllers down
    only while no process sits in it, so the agent first moves itself (and whatever else
    is there) into a leaf of its own."""
    wanted = [c for c in CONTROLLERS if c in (_read(base / "cgroup.controllers").split())]
    enabled = _read(base / "cgroup.subtree_control").split()
    missing = [c for c in wanted if c not in enabled]
    if not missing:
        return
    members = _read(base / "cgroup.procs").split()
    if members:
        leaf = base / AGENT_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in members:
            with contextlib.suppress(OSError):  # gone meanwhile
                (leaf / "cgroup.procs").write_text(pid)
    _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text()
    return ""


def existing(app: str, root: Path = ROOT) -> AppCgroup:
    """The app's cgroup as :func:`create` places it (whether or not it exists now)."""
    if version(root) == 2:
        path = root / _own("").lstrip("/") / _name(app)
        return AppCgroup((path,), 2, path)
    paths = [root / c / _own(c).lstrip("/") / _name(app) for c in V1_CONTROLLERS]
    unified = _unified(app, root)
    return AppCgroup(tuple(paths + ([unified] if unified else [])), 1, unified)


def counters(group: AppCgroup) -> dict[str, int]:
    """Limit events so far: ``oom_kill`` (killed at the memory limit), ``memory_max``
    (times the limit was hit), ``pids_max`` (forks refused at the pids limit), and
    ``cpu_periods`` / ``cpu_throttled`` (scheduler periods, and those in which the app
    had used up its CPU quota)."""
    out = {"oom_kill": 0, "memory_max": 0, "pids_max": 0, "cpu_periods": 0,
           "cpu_throttled": 0}
    for path in group.paths:  # each file is in one hierarchy only (v1) or all in one (v2)
        out["oom_kill"] += _keyed(path / "memory.events", "oom_kill")
        out["oom_kill"] += _keyed(path / "memory.oom_control", "oom_kill")
        out["memory_max"] += _keyed(path / "memory.events", "max")
        out["memory_max"] += _number(path / "memory.failcnt")
        out["pids_max"] += _keyed(path / "pids.events", "max")
        out["cpu_periods"] += _keyed(path / "cpu.stat", "nr_periods")
        out["cpu_throttled"] += _keyed(path / "cpu.stat", "nr_throttled")
    return out


def usage(group: AppCgroup) -> dict[str, int]:
    """What the app has used: ``cpu_usec`` (CPU time so far; v2's cpu.stat, which the
    unified cgroup beside v1 has too, else v1's cpuacct) and ``memory_bytes`` (now)."""
    cpu = memory = 0
    for path in group.paths:
        cpu = cpu or _keyed(path / "cpu.stat", "usage_usec") or \
            _number(path / "cpuacct.usage") // 1000
        memory = memory or _number(path / "memory.current") or \
            _number(path / "memory.usage_in_bytes")
    return {"cpu_usec": cpu, "memory_bytes": memory}


def _keyed(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0


def _number(path: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return 0


def kill(group: AppCgroup) -> None:
    """Kill every process left in the app's cgroup (v2's cgroup.kill, else SIGKILL)."""
    for path in group.paths:
        with contextlib.suppress(OSError):
            if (path / "cgroup.kill").exists():
                (path / "cgroup.kill").write_text("1")
    for pid in group.members():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)


def remove(group: AppCgroup, wait: float = 0.0) -> None:
    """Remove the app's cgroup; ``wait`` seconds for its last processes to be gone (a
    killed process stays counted in it for a moment)."""
    end = time.monotonic() + wait
    for path in group.paths:
        while True:
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # still busy
                if time.monotonic() >= end:
                    break
                time.sleep(0.05)


def _write(path: Path, value: str, optional: bool = False) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        if optional:
            return
        raise NotAvailable(f"cannot set {path.name} on {path.parent}: "
                           f"{os.strerror(e.errno or 0)}") from e
