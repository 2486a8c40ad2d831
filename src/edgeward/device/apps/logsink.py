"""Daemons' output into their log files: one thread for every daemon's pipes.

Each daemon writes to pipes the agent reads; each line is stamped (UTC) and tagged
with its stream, and appended to ``<app>/logs/<daemon>.log`` (root's, 0600: the app
can neither read nor forge its own log). A file past its size limit is rotated to
``.1``, so a chatty app costs bounded disk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import selectors
import threading
from collections.abc import Iterator
from pathlib import Path

from edgeward.files import private_dir

LOG_MAX = 1 << 20


class LogSink:
    def __init__(self, limit: int = LOG_MAX) -> None:
        self.limit = limit
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.partial: dict[int, bytes] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.stop_flag = False
        self.thread = threading.Thread(target=self._run, name="app-logs", daemon=True)
        self.thread.start()

    def attach(self, fd: int, path: Path, stream: str) -> None:
        """Read ``fd`` (a pipe's read end, now the sink's) into ``path``."""
        private_dir(path.parent)
        os.set_blocking(fd, False)
        with self.lock:
            self.selector.register(fd, selectors.EVENT_READ, (path, stream))
        os.write(self.wake_w, b"x")

    def close(self) -> None:
        self.stop_flag = True
        os.write(self.wake_w, b"x")
        self.thread.join(timeout=5)
        with self.lock:
            for key in list(self.selector.get_map().values()):
                with contextlib.suppress(OSError):
                    os.close(key.fd)
            self.selector.close()
        os.close(self.wake_w)

    def _run(self) -> None:
        while not self.stop_flag:
            with self.lock:
                ready = self.selector.select(timeout=0.05)
            for key, _ in ready:
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_r, 4096)
                    continue
                self._drain(key.fd, *key.data)

    def _drain(self, fd: int, path: Path, stream: str) -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the daemon closed it (it exited)
            with self.lock:
                self.selector.unregister(fd)
            os.close(fd)
            rest = self.partial.pop(fd, b"")
            if rest:
                self._write(path, stream, [rest])
            return
        data = self.partial.pop(fd, b"") + chunk
        *lines, rest = data.split(b"\n")
        if len(rest) > 8192:  # a line without end: write what there is
            lines.append(rest)
            rest = b""
        if rest:
            self.partial[fd] = rest
        if lines:
            self._write(path, stream, lines)

    def _write(self, path: Path, stream: str, lines: list[bytes]) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        text = b"".join(f"{stamp} {stream} ".encode() + line + b"\n" for line in lines)
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_size + len(text) > self.limit:
                os.replace(path, path.with_name(path.name + ".1"))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, text)
            finally:
                os.close(fd)


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a log (and of its rotated half when needed)."""
    found: list[str] = []
    for part in (path, path.with_name(path.name + ".1")):
        with contextlib.suppress(OSError):
            found = part.read_text(errors="replace").splitlines() + found
        if len(found) >= lines:
            break
    return found[-lines:] if lines else found


def follow(path: Path, stop: threading.Event) -> Iterator[str]:
    """New lines of a log as they are written, until ``stop``."""
    offset = path.stat().st_size if path.exists() else 0
    while not stop.is_set():
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            if size < offset:  # rotated
                offset = 0
            if size > offset:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read()
                offset += len(data)
                yield from data.decode(errors="replace").splitlines()
        stop.wait(0.2)
