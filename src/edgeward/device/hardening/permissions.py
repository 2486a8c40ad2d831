"""Modes in system paths: world-writable files and directories (a directory with the
sticky bit, like /tmp, is fine), set-uid and set-gid programs.

The check takes :class:`FileRecord` s (a path and its ``lstat`` mode and owner); the
collector walks the tree without following links.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass

from edgeward.device.hardening.finding import Finding

SYSTEM_PATHS = ("bin", "sbin", "lib", "lib32", "lib64", "usr/bin", "usr/sbin", "usr/lib",
                "usr/lib32", "usr/lib64", "usr/libexec", "usr/local/bin", "usr/local/sbin",
                "usr/local/lib", "etc", "boot", "opt")


@dataclass(frozen=True)
class FileRecord:
    path: str  # absolute, as seen on the gateway: /usr/bin/su
    mode: int  # st_mode from lstat
    uid: int


def check(records: Iterable[FileRecord], truncated: bool = False) -> list[Finding]:
    found = []
    for r in records:
        if stat.S_ISLNK(r.mode) or not (stat.S_ISREG(r.mode) or stat.S_ISDIR(r.mode)):
            continue  # a link's mode means nothing; devices and sockets are not programs
        kind = "directory" if stat.S_ISDIR(r.mode) else "file"
        where = f"{r.path} (mode {stat.filemode(r.mode)} {r.mode & 0o7777:04o}, uid {r.uid})"
        if r.mode & stat.S_IWOTH and not (kind == "directory" and r.mode & stat.S_ISVTX):
            found.append(Finding(
                "files.world-writable", "high", f"a world-writable {kind} in a system path",
                where, f"chmod o-w {r.path}: anyone on the gateway can change what it "
                       + ("holds" if kind == "directory" else "says or runs") + "."))
        if kind == "file" and r.mode & stat.S_ISUID:
            found.append(Finding(
                "files.setuid", "medium" if r.uid == 0 else "low",
                f"a set-uid program ({'root' if r.uid == 0 else f'uid {r.uid}'})", where,
                f"chmod u-s {r.path} unless it must run as its owner (su, passwd, mount ... "
                "on a gateway nobody logs in to, nothing should)."))
        if kind == "file" and r.mode & stat.S_ISGID:
            found.append(Finding(
                "files.setgid", "low", "a set-gid program", where,
                f"chmod g-s {r.path} unless it must run with its group."))
    if truncated:
        found.append(Finding(
            "files.incomplete", "low", "the system paths were not walked to the end",
            "the walk stopped at its cap on the number of entries",
            "Look at the largest system directories: a tree that big on a gateway is "
            "unusual in itself."))
    return found
