"""Following the apps' log files as the log sink writes them (apps/logsink.py): where
reading stopped (a :class:`Cursor`), and the lines from there, parsed for the server.

A log is ``<app>/logs/<daemon>.log``, rotated to ``.1`` at a size limit. A cursor
names its file by inode and the digest of its first line (an inode is reused once its
file is gone) and keeps the byte after the last line read. Read on from a cursor: the
file still current goes on from the offset; after a rotation the ``.1`` file is
finished from the offset, then the new file read from its start; a file that got
shorter was truncated and is read again from its start; a last line without its
newline waits for it (in a rotated file it never comes: the line is taken as it is).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

MAX_TEXT = 2000  # characters of one line, as the server takes it
CHUNK = 64 * 1024
HEAD = 128  # bytes of a file's first line that tell it from another
_WORDS = "debug|info|notice|warn|warning|error|err|crit|critical|fatal"
_TAGGED = re.compile(rf"(?:\[|<|level=\"?)({_WORDS})\b", re.IGNORECASE)  # [warn] level=info
_SHOUTED = re.compile(rf"\b({_WORDS.upper()})\b")  # ERROR:root:..., 12:00:01 WARNING ...
_LEVEL = {"debug": "debug", "info": "info", "notice": "info", "warn": "warning",
          "warning": "warning", "error": "error", "err": "error", "crit": "error",
          "critical": "error", "fatal": "error"}

Line = dict[str, Any]  # {"time", "app", "source", "level", "text"}: as the server takes it


@dataclass(frozen=True)
class Cursor:
    """Where reading a log stopped: the file, by inode and the digest of its first line
    (an inode is reused once its file is gone), the byte after the last line read, and
    the rotated ``.1`` file already read to its end ("inode:digest")."""

    inode: int
    offset: int
    head: str = ""
    done: str = ""

    def of(self, file: LogFile) -> bool:
        """Whether this cursor is in ``file`` (and the file has not become shorter)."""
        return (file.inode == self.inode and self.offset <= file.size
                and (not self.head or file.head == self.head))

    def dump(self) -> list[Any]:
        return [self.inode, self.offset, self.head, self.done]

    @classmethod
    def load(cls, data: Any) -> Cursor:
        inode, offset, head, done = data
        return cls(int(inode), int(offset), str(head), str(done))


class LogFile(NamedTuple):
    """A log file as found: where, which (inode and first line), how long."""

    path: Path
    inode: int
    size: int
    head: str

    @property
    def key(self) -> str:
        return f"{self.inode}:{self.head}"


Cursors = dict[str, Cursor]  # "<app>/<daemon>" -> cursor


def clean(text: str) -> str:
    """One line of printable text: tabs as spaces, other control characters dropped,
    capped at :data:`MAX_TEXT` characters."""
    text = text.replace("\t", " ")
    if not text.isprintable():
        text = "".join(c for c in text if unicodedata.category(c) != "Cc")
    return text.rstrip()[:MAX_TEXT]


def level_of(text: str, stream: str) -> str:
    """The level a line names near its start (``ERROR``, ``[warn]``, ``level=info``),
    else ``error`` for stderr and ``info`` for stdout."""
    named = _TAGGED.search(text[:48]) or _SHOUTED.search(text[:48])
    if named:
        return _LEVEL[named.group(1).lower()]
    return "error" if stream == "err" else "info"


def parse(raw: bytes, app: str, now: float) -> dict[str, Any] | None:
    """A log sink line (``<UTC stamp> <out|err> <text>``) as the server takes it; None
    for a line with nothing printable."""
    line = raw.decode("utf-8", errors="replace")
    stamp, _, rest = line.partition(" ")
    stream, _, text = rest.partition(" ")
    try:
        when = dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        when, stream, text = now, "", line  # not the sink's: kept whole, stamped now
    if stream not in ("out", "err"):
        when, stream, text = now, "", line
    text = clean(text)
    if not text:
        return None
    return {"time": when, "app": app, "source": "app", "level": level_of(text, stream),
            "text": text}


def size(line: Line) -> int:
    """Bytes of ``line`` in a batch's JSON."""
    return len(json.dumps(line)) + 1


class Gather:
    """Lines gathered for a batch, within its caps (none: no caps)."""

    def __init__(self, most: int | None, budget: int | None) -> None:
        self.most, self.budget = most, budget
        self.lines: list[Line] = []
        self.used = 0
        self.full = most is not None and most <= 0

    def add(self, line: Line) -> bool:
        """Take ``line`` unless a cap is reached (then the batch is full)."""
        if self.full:
            return False
        needed = size(line)
        if self.budget is not None and self.lines and self.used + needed > self.budget:
            self.full = True
            return False
        self.lines.append(line)
        self.used += needed
        self.full = self.most is not None and len(self.lines) >= self.most
        return True


def read(logs: dict[str, tuple[str, Path]], keys: Iterable[str], start: Cursors,
         stop: Cursors | None, gather: Gather, clock: Callable[[], float]) -> Cursors:
    """Lines of ``logs`` (key -> (app, current file)) in the order of ``keys``, from
    ``start`` on, into ``gather`` until it is full, or to ``stop`` (a pending batch's
    end: only logs it names); the cursors after them (logs gone are forgotten)."""
    ends: Cursors = {}
    for key in keys:
        app, path = logs[key]
        cursor = start.get(key)
        limit = stop.get(key) if stop is not None else None
        if stop is not None and limit is None:  # not in that batch: not read now
            if cursor is not None:
                ends[key] = cursor
            continue
        for file, offset, growing, done in segments(path, cursor):
            end = limit.offset if limit is not None and limit.of(file) else None
            offset, head = _segment(file, offset, end, growing, app, gather, clock)
            cursor = Cursor(file.inode, offset, head, done)
            if gather.full or end is not None:
                break
        if cursor is not None:
            ends[key] = cursor
    return ends


def _segment(file: LogFile, offset: int, end: int | None, growing: bool, app: str,
             gather: Gather, clock: Callable[[], float]) -> tuple[int, str]:
    """Read one file (if it is still the one listed) from ``offset``, to ``end`` if
    given; the offset after the last line taken, and the file's head."""
    try:
        fd = os.open(file.path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return offset, file.head
    try:
        if os.fstat(fd).st_ino != file.inode:  # rotated meanwhile: the next round
            return offset, file.head
        while not gather.full:
            want = CHUNK if end is None else min(CHUNK, end - offset)
            chunk = os.pread(fd, want, offset) if want > 0 else b""
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                raws, step = chunk[:cut].split(b"\n"), 1
            elif chunk and (len(chunk) == CHUNK or not growing):
                raws, step = [chunk], 0  # a line longer than a chunk; a rotated file's end
            else:
                break  # the end, or a last line whose newline is still to come
            for raw in raws:
                line = parse(raw, app, clock())
                if line is not None and not gather.add(line):
                    break
                offset += len(raw) + step
        return offset, _head(fd) if offset else file.head
    finally:
        os.close(fd)


def segments(path: Path, cursor: Cursor | None) -> list[tuple[LogFile, int, bool, str]]:
    """The files to read for a log from ``cursor``, in order: (file, offset, whether it
    may still grow, the rotated file read to its end by then).

    The cursor's file still current: from its offset. Else the rotated ``.1`` file:
    from the cursor's offset if it is the cursor's file, not at all if it was read to
    its end already, else from its start (a log not seen yet, or rotated twice since);
    then the current file from its start (it is new, or it was truncated)."""
    current = _identify(path)
    old = _identify(path.with_name(path.name + ".1"))
    if cursor is not None and current is not None and cursor.of(current):
        return [(current, cursor.offset, True, cursor.done)]
    out: list[tuple[LogFile, int, bool, str]] = []
    done = ""
    if old is not None:
        done = old.key
        if cursor is not None and cursor.of(old):
            out.append((old, cursor.offset, False, cursor.done))
        elif cursor is None or cursor.done != old.key:
            out.append((old, 0, False, ""))
    if current is not None:
        out.append((current, 0, True, done))
    return out


def _head(fd: int) -> str:
    """A digest of a file's first line (of its first bytes if that line is long); ""
    while it has no complete line."""
    start = os.pread(fd, HEAD, 0)
    cut = start.find(b"\n")
    if cut < 0 and len(start) < HEAD:
        return ""
    return hashlib.sha256(start if cut < 0 else start[:cut + 1]).hexdigest()[:32]


def _identify(path: Path) -> LogFile | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        return LogFile(path, info.st_ino, info.st_size, _head(fd))
    finally:
        os.close(fd)
