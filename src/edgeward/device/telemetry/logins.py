"""Failed logins, read from the system's authentication log as it grows.

The edgeward OS ships no login at all (no getty, no sshd, every account locked), so on
it this log stays empty; a gateway image that does run sshd or a console login (the
hardening audit flags those) writes its failures there, and each scan turns the new
ones into one security event per source address with their count: a brute force is
seen as it happens, not at the next interval. The file is followed by inode and offset;
a rotated or truncated log starts again from its beginning.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PATTERNS = (
    re.compile(r"Failed (?:password|publickey|keyboard-interactive/pam) for "
               r"(?:invalid user )?(?P<user>\S+) from (?P<source>\S+)"),
    re.compile(r"Invalid user (?P<user>\S+) from (?P<source>\S+)"),
    re.compile(r"authentication failure;.*?rhost=(?P<source>\S*)(?:\s+user=(?P<user>\S+))?"),
    re.compile(r"FAILED LOGIN \(\d+\) on '?(?P<source>[^' ,]+)'? FOR '?(?P<user>[^' ,]+)"),
)
MAX_READ = 1 << 20  # a scan reads at most this much of a log that grew


def failures(lines: list[str]) -> Counter[tuple[str, str]]:
    """(source, user) of each failed login in ``lines``, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for line in lines:
        for pattern in PATTERNS:
            match = pattern.search(line)
            if match:
                found[(match.group("source") or "local", match.group("user") or "?")] += 1
                break
    return found


@dataclass
class AuthLog:
    path: Path
    inode: int = 0
    offset: int = 0
    partial: bytes = b""

    def new_lines(self) -> list[str]:
        """The complete lines written since the last call (none the first time: what was
        there before the agent started is history, not news)."""
        try:
            with self.path.open("rb") as f:
                stat = os.fstat(f.fileno())
                first = self.inode == 0
                if stat.st_ino != self.inode or stat.st_size < self.offset:
                    self.inode, self.partial = stat.st_ino, b""
                    self.offset = stat.st_size if first else 0
                f.seek(self.offset)
                data = f.read(MAX_READ)
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines, _, self.partial = data.rpartition(b"\n")
        return [line.decode("utf-8", "replace") for line in lines.split(b"\n") if line] \
            if lines or data.endswith(b"\n") else []
