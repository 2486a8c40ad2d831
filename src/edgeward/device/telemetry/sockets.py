"""Who listens and who talks to whom: listening sockets with their process, established
connections with their remote host, and executables started from writable places, each
attributed to the app whose cgroup holds the process.

On a real gateway every process is the gateway's. The virtual gateway shares its host
with everything else on it, so there the scan is limited to the gateway's own processes
(the agent, its children, and the apps' cgroups): ``scope`` is that set of pids, or
None for the whole machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Socket:
    kind: str  # "listen" or "remote"
    proto: str
    address: str  # the local address of a listener; the remote host of a connection
    port: int
    pid: int
    process: str
    app: str

    def to_dict(self) -> dict[str, object]:
        if self.kind == "listen":
            return {"proto": self.proto, "address": self.address, "port": self.port,
                    "process": self.process, "app": self.app}
        return {"host": self.address, "port": self.port, "process": self.process,
                "app": self.app}

    @property
    def key(self) -> str:
        return f"{self.proto}/{self.port}" if self.kind == "listen" else self.address


def _proto(family: int, kind: int) -> str:
    name = "tcp" if kind == socket.SOCK_STREAM else "udp"
    return name + ("6" if family == socket.AF_INET6 else "")


def _name(pid: int | None, names: dict[int, str]) -> str:
    if not pid:
        return ""
    if pid not in names:
        names[pid] = ""
        with contextlib.suppress(psutil.Error):
            names[pid] = psutil.Process(pid).name()[:64]
    return names[pid]


def _public(host: str) -> bool:
    """A host worth reporting: not loopback, not the unspecified address."""
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host.split("%")[0])
        return not (address.is_loopback or address.is_unspecified)
    return False


def scan(apps: Mapping[int, str], scope: set[int] | None) -> list[Socket]:
    """Listening sockets and established connections' remote hosts (deduplicated)."""
    names: dict[int, str] = {}
    found: dict[tuple[str, str, str, int, str], Socket] = {}
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.Error:
        return []
    for c in connections:
        if scope is not None and (c.pid is None or c.pid not in scope):
            continue
        proto = _proto(c.family, c.type)
        app = apps.get(c.pid or 0, "")
        if c.status == psutil.CONN_LISTEN or (proto.startswith("udp") and not c.raddr):
            if c.laddr:
                entry = Socket("listen", proto, c.laddr.ip, c.laddr.port, c.pid or 0,
                               _name(c.pid, names), app)
                found.setdefault(("listen", proto, entry.address, entry.port, app), entry)
        elif c.status == psutil.CONN_ESTABLISHED and c.raddr and _public(c.raddr.ip):
            entry = Socket("remote", proto, c.raddr.ip, c.raddr.port, c.pid or 0,
                           _name(c.pid, names), app)
            found.setdefault(("remote", proto, entry.address, entry.port, app), entry)
    return sorted(found.values(), key=lambda s: (s.kind, s.address, s.port))


def writable_execs(apps: Mapping[int, str], scope: set[int] | None
                   ) -> list[tuple[int, str, str]]:
    """(pid, executable, app) of processes whose executable lives on a writable
    filesystem: the gateway's system and its apps' images are read-only, so that is a
    file someone wrote and ran (a dropper, a miner). On the virtual gateway only the apps
    are judged, and the host's root filesystem stands in for the gateway's read-only
    system (its programs, such as the sandbox's, are on the host's writable disk)."""
    out = []
    candidates = list(apps) if scope is not None else psutil.pids()
    host_root = os.stat("/").st_dev
    for pid in candidates:
        try:  # the magic link reaches the file in the process's own mount namespace
            if os.statvfs(f"/proc/{pid}/exe").f_flag & os.ST_RDONLY:
                continue
            if scope is not None and os.stat(f"/proc/{pid}/exe").st_dev == host_root:
                continue  # the host's own programs (bwrap, the confiner) stand in for the
                # gateway's read-only system there
            exe = psutil.Process(pid).exe()
        except (OSError, psutil.Error):
            continue
        if exe:
            out.append((pid, exe, apps.get(pid, "")))
    return out


def gateway_pids(apps: Mapping[int, str]) -> set[int]:
    """The agent, its descendants and the apps' processes."""
    me = psutil.Process()
    pids = {me.pid} | set(apps)
    with contextlib.suppress(psutil.Error):
        pids |= {child.pid for child in me.children(recursive=True)}
    return pids
