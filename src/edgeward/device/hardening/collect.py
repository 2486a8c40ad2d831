"""The audit's I/O: read a root filesystem (``/`` on a gateway, the mounted rootfs of a
virtual one), the listening sockets, and put them in :class:`~.checks.Inputs`.

Paths are resolved inside the root, links included (an absolute link in a mounted
image points into the image, not at the machine that mounted it), and the walk of
the system paths never follows a link and stops at a cap.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import socket
import stat
from collections.abc import Iterable
from pathlib import Path

import psutil

from edgeward.board.fuses import FuseState
from edgeward.device.hardening import sshd_config
from edgeward.device.hardening.checks import Inputs, audit
from edgeward.device.hardening.finding import Finding
from edgeward.device.hardening.permissions import SYSTEM_PATHS, FileRecord
from edgeward.device.hardening.services import Allowed, Listener
from edgeward.errors import ToolError

MAX_LINKS = 40  # as the kernel's limit on links followed in one lookup
MAX_TEXT = 1 << 20
WALK_CAP = 200_000
UNIT_DIRS = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")


def resolve(root: Path, path: str) -> Path | None:
    """``path`` (absolute, as the gateway sees it) inside ``root``, following links as if
    ``root`` were ``/``; None past :data:`MAX_LINKS` links."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        if here.is_symlink():
            links += 1
            if links > MAX_LINKS:
                return None
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


def read_text(root: Path, path: str) -> str | None:
    """A regular file's text (at most 1 MiB), or None if there is none."""
    found = resolve(root, path)
    if found is None or not found.is_file():
        return None
    with found.open("rb") as f:
        return f.read(MAX_TEXT).decode(errors="replace")


def _listdir(root: Path, path: str) -> list[str]:
    found = resolve(root, path)
    if found is None or not found.is_dir():
        return []
    return sorted(os.listdir(found))


def systemd_units(root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The links in ``*.wants/`` folders (enabled units) and the units masked in /etc."""
    enabled, masked = [], []
    for folder in UNIT_DIRS:
        for name in _listdir(root, folder):
            if name.endswith(".wants"):
                enabled += [f"/{folder}/{name}/{unit}"
                            for unit in _listdir(root, f"{folder}/{name}")]
            elif folder.startswith("etc/"):
                link = (resolve(root, folder) or root) / name
                if link.is_symlink() and os.readlink(link) == "/dev/null":
                    masked.append(name)
    return tuple(enabled), tuple(masked)


def sshd_files(root: Path) -> tuple[str | None, dict[str, str]]:
    """``sshd_config`` and every file its Includes name (recursively, as far as sshd
    goes), by path."""
    main = read_text(root, sshd_config.MAIN)
    files: dict[str, str] = {}
    pending = [(main, 0)] if main is not None else []
    while pending:
        text, depth = pending.pop()
        if text is None or depth >= sshd_config.MAX_DEPTH:
            continue
        for pattern in sshd_config.include_patterns(text):
            directory, name = posixpath.split(pattern)
            for entry in _listdir(root, directory):
                path = posixpath.join(directory, entry)
                if fnmatch.fnmatchcase(entry, name) and path not in files:
                    content = read_text(root, path)
                    if content is not None:
                        files[path] = content
                        pending.append((content, depth + 1))
    return main, files


def walk(root: Path, paths: Iterable[str] = SYSTEM_PATHS, cap: int = WALK_CAP
         ) -> tuple[list[FileRecord], bool]:
    """lstat every entry under the system ``paths`` (links not followed, nor walked
    into); True with the records if the walk stopped at ``cap`` entries."""
    records: list[FileRecord] = []
    stack = [p for p in paths if (root / p).is_dir() and not (root / p).is_symlink()]
    for top in stack:
        st = os.lstat(root / top)
        records.append(FileRecord(f"/{top}", st.st_mode, st.st_uid))
    while stack:
        rel = stack.pop()
        try:
            entries = list(os.scandir(root / rel))
        except OSError:
            continue  # gone or unreadable: nothing to judge
        for entry in entries:
            if len(records) >= cap:
                return records, True
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            records.append(FileRecord(f"/{rel}/{entry.name}", st.st_mode, st.st_uid))
            if stat.S_ISDIR(st.st_mode):
                stack.append(f"{rel}/{entry.name}")
    return records, False


def _process_name(pid: int | None) -> str:
    if pid is None:
        return ""
    try:
        return str(psutil.Process(pid).name())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def listening(exclude_pids: Iterable[int] = ()) -> list[Listener]:
    """TCP sockets in LISTEN and unconnected UDP sockets, with their programs."""
    skip = set(exclude_pids)
    try:
        sockets = psutil.net_connections(kind="inet")
    except psutil.AccessDenied as e:
        raise ToolError("listing the listening sockets needs root") from e
    found = []
    for s in sockets:
        tcp = s.type == socket.SOCK_STREAM
        if (tcp and s.status != psutil.CONN_LISTEN) or (not tcp and s.raddr) or not s.laddr:
            continue
        if s.pid is not None and s.pid in skip:
            continue
        found.append(Listener("tcp" if tcp else "udp", s.laddr.ip, s.laddr.port,
                              _process_name(s.pid), s.pid))
    return found


def from_root(root: Path, cmdline: str, fuses: FuseState | None,
              listeners: Iterable[Listener] = (), allowed: Iterable[Allowed] = (),
              cap: int = WALK_CAP) -> Inputs:
    """Everything the audit checks, read from the filesystem under ``root``."""
    enabled, masked = systemd_units(root)
    main, includes = sshd_files(root)
    records, truncated = walk(root, cap=cap)
    return Inputs(
        cmdline=cmdline, inittab=read_text(root, "/etc/inittab"), enabled_units=enabled,
        masked_units=masked, shadow=read_text(root, "/etc/shadow"),
        passwd=read_text(root, "/etc/passwd"), sshd_config=main, sshd_includes=includes,
        listeners=tuple(listeners), allowed=tuple(allowed), files=tuple(records),
        files_truncated=truncated, fuses=fuses)


def audit_root(root: Path, cmdline: str, fuses: FuseState | None,
               allowed: Iterable[Allowed] = ()) -> list[Finding]:
    """The audit of a running gateway: its own ``root`` (``/``) and ``/proc/cmdline``'s
    text, its fuses and the sockets listening on it."""
    return audit(from_root(root, cmdline, fuses, listening(), allowed))
