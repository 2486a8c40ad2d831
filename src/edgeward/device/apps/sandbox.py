"""Running one app command in its sandbox (bubblewrap; don't hand-write what it does well).

What the app gets: its own mount, PID, IPC, UTS, cgroup and network namespaces
(the host network only with the ``network`` plug), its own unprivileged user,
no capabilities, no_new_privs, the seccomp allow-list, its cgroup limits, a
read-only view of its image at ``/app`` and of the system's ``/usr``, a private
``/tmp``, and one writable directory of its own at ``/data``. Nothing else of
the host: not ``/etc``, ``/home``, other apps, or the agent's state.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeward.device.apps import cgroups
from edgeward.device.apps.seccomp import compile_filter
from edgeward.errors import ToolError
from edgeward.trust.appmanifest import AppManifest

SYSTEM_LINKS = (("usr/lib", "/lib"), ("usr/lib64", "/lib64"), ("usr/bin", "/bin"),
                ("usr/sbin", "/sbin"))


@dataclass(frozen=True)
class AppUser:
    uid: int
    gid: int


def bwrap() -> str:
    tool = shutil.which("bwrap")
    if tool is None:
        raise ToolError("bwrap not found (Debian package bubblewrap): run scripts/bootstrap")
    return tool


def argv(manifest: AppManifest, image: Path, data: Path, command: list[str],
         seccomp_fd: int, granted: set[str] | None = None) -> list[str]:
    """The bubblewrap command line for ``command`` (argv[0] inside the image); an
    interface counts only if the manifest asks for it and it is ``granted``."""
    args = [bwrap(), "--unshare-all", "--die-with-parent", "--new-session",
            "--hostname", manifest.name, "--cap-drop", "ALL", "--seccomp", str(seccomp_fd),
            "--ro-bind", "/usr", "/usr"]
    for target, link in SYSTEM_LINKS:
        if Path(link).is_symlink() or Path(link).exists():
            args += ["--symlink", target, link]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",  # noqa: S108 (its own)
             "--ro-bind", str(image), "/app", "--bind", str(data), "/data",
             "--chdir", "/app", "--clearenv", "--setenv", "HOME", "/data",
             "--setenv", "PATH", "/app/bin:/usr/bin:/bin", "--setenv", "EDGEWARD_APP",
             manifest.name]
    interfaces = manifest.interfaces() & (granted if granted is not None else
                                          manifest.interfaces())
    if "network" in interfaces:
        args.append("--share-net")
    return [*args, "--", f"/app/{command[0]}", *command[1:]]


def run(manifest: AppManifest, image: Path, data: Path, user: AppUser, command: list[str],
        timeout: float = 60.0, granted: set[str] | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` to its end in the app's sandbox and cgroup (as root, which the
    launcher gives up before bubblewrap starts)."""
    group = cgroups.create(manifest.name, manifest.memory, manifest.cpu, manifest.pids)
    with compile_filter() as bpf:
        fd = bpf.fileno()
        launcher = [sys.executable, "-m", "edgeward.device.apps.launch", str(user.uid),
                    str(user.gid), ",".join(str(p) for p in group.procs), "--",
                    *argv(manifest, image, data, command, fd, granted)]
        return subprocess.run(launcher, pass_fds=[fd], capture_output=True,
                              timeout=timeout, check=False)
