"""Starting a planned app: its cgroup and limits, its egress filter, its seccomp
program, then ``edgeward-confine enter`` (as root: join the cgroup, drop to the app's
user) -> bubblewrap (unprivileged) -> ``edgeward-confine restrict`` -> the program.

No Python runs between the agent and the app: a start costs bubblewrap's few
milliseconds, not an interpreter's.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import grp
import ipaddress
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgeward.device.apps import cgroups, egress, sandbox, seccomp
from edgeward.errors import NotAvailable, ToolError
from edgeward.files import write_atomic

CONFINE = "edgeward-confine"
ANYWHERE = (egress.Allowed(ipaddress.ip_network("0.0.0.0/0"), 0),
            egress.Allowed(ipaddress.ip_network("::/0"), 0))


RUNTIME_COPY = Path("/run/edgeward") / CONFINE


def confine_binary() -> Path:
    """The native helper: $EDGEWARD_CONFINE, beside this Python (a virtualenv's bin/, where
    scripts/bootstrap builds it), or on PATH (/usr/libexec on a gateway image). Inside the
    sandbox bubblewrap binds it as the app's user, who must be able to reach it: one in
    a folder closed to others (a checkout under /root, say) is copied to /run first."""
    candidates = [os.environ.get("EDGEWARD_CONFINE", ""),
                  str(Path(sys.executable).parent / CONFINE),
                  f"/usr/libexec/edgeward/{CONFINE}", shutil.which(CONFINE) or ""]
    for candidate in filter(None, candidates):
        if os.access(candidate, os.X_OK):
            return _reachable(Path(candidate), os.stat(candidate).st_mtime_ns)
    raise ToolError(f"{CONFINE} not found (built by scripts/bootstrap from "
                    "src/edgeward/device/apps/confine.c)")


@functools.lru_cache(maxsize=4)
def _reachable(helper: Path, _version: int = 0) -> Path:
    folders = helper.resolve().parents
    if all(f.stat().st_mode & 0o001 for f in folders):
        return helper
    data = helper.read_bytes()
    with contextlib.suppress(OSError):
        if RUNTIME_COPY.read_bytes() == data:
            return RUNTIME_COPY
    RUNTIME_COPY.parent.mkdir(parents=True, exist_ok=True)
    RUNTIME_COPY.parent.chmod(0o755)
    write_atomic(RUNTIME_COPY, data, mode=0o755)
    return RUNTIME_COPY


LANDLOCK_WANTED = 7  # file and network rules, scoping, and logging across exec


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none)."""
    libc = ctypes.CDLL(None, use_errno=True)
    version = int(libc.syscall(444, None, 0, 1))  # landlock_create_ruleset(VERSION)
    return max(version, 0)


def groups(names: tuple[str, ...]) -> list[int]:
    """The gids of the named groups this system has (a missing one grants nothing)."""
    found = []
    for name in names:
        with contextlib.suppress(KeyError):
            found.append(grp.getgrnam(name).gr_gid)
    return found


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    group: cgroups.AppCgroup


def prepare(plan: sandbox.Plan) -> cgroups.AppCgroup:
    """The app's cgroup with its limits, and its egress filter attached."""
    group = cgroups.create(plan.app, plan.memory, plan.cpu, plan.pids)
    if group.unified is not None:
        egress.attach_bind(group.unified, not plan.isolated and (plan.rules.bind_any
                                                                 or plan.complain))
    if plan.shares_network:
        if group.unified is None:
            raise NotAvailable("egress filtering needs a cgroup v2 hierarchy, which this "
                               "host lacks: refusing to give the app the network unfiltered")
        allowed = () if plan.isolated else ANYWHERE if plan.complain else tuple(
            egress.resolve(plan.egress))  # cut by an operator: nothing at all
        egress.attach(group.unified, allowed)
    return group


def start(plan: sandbox.Plan, user: sandbox.AppUser, stdout: int | IO[bytes] | None,
          stderr: int | IO[bytes] | None) -> Started:
    """Start the planned command; it runs until it exits (or is stopped)."""
    group = prepare(plan)
    confine = confine_binary()
    extra = ("dialout", "adm") if plan.complain else plan.rules.groups
    gids = [user.gid, *[g for g in groups(extra) if g != user.gid]]
    fd = seccomp.pipe(plan.complain)
    try:
        command = [str(confine), "enter", str(user.uid), ",".join(map(str, gids)),
                   ",".join(str(p) for p in group.procs), "--",
                   *sandbox.argv(plan, confine, fd)]
        process = subprocess.Popen(command, pass_fds=[fd], stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr, start_new_session=True)
    except OSError as e:
        raise ToolError(f"cannot start {plan.app}: {e.strerror}") from e
    finally:
        os.close(fd)
    return Started(process, group)


def run(plan: sandbox.Plan, user: sandbox.AppUser, timeout: float = 60.0
        ) -> subprocess.CompletedProcess[bytes]:
    """Run the planned command to its end and collect its output."""
    started = start(plan, user, subprocess.PIPE, subprocess.PIPE)
    try:
        out, err = started.process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # this command only: its sandbox dies with bubblewrap
        started.process.kill()  # (the app's daemons share its cgroup: they go on)
        out, err = started.process.communicate()
    return subprocess.CompletedProcess(started.process.args, started.process.returncode,
                                       out, err)
