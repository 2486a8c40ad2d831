"""App and agent logs on their way to the fleet server: read where the last batch ended,
sent at least once, never twice under the same batch id.

The apps' logs are the files the log sink writes (``<apps>/<app>/logs/<daemon>.log``,
rotated to ``.1``), each followed by a cursor (its inode and offset; logfiles.py, which
also handles rotation, truncation and a line still being written), the cursors kept in
a small JSON file under the agent's data (0600, replaced atomically) so a restart
carries on where it was. The agent's own lines (:meth:`LogShipper.ship_agent`) wait in
memory, a bounded queue that counts what it had to drop.

:meth:`LogShipper.take` makes a batch (its id 32 random hex digits) and
:meth:`LogShipper.sent` commits the offsets once the server stored it. Until then
``take`` answers the same batch, with the same id, so the server's idempotency drops a
batch that did arrive although its answer did not; the pending batch's end is saved
too, so even after a restart its app lines go again under the same id. Sending is the
caller's: this module does no networking.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.board.base import Board
from edgeward.device.telemetry.logfiles import Cursor, Cursors, Gather, Line, clean, read, size
from edgeward.errors import StateError
from edgeward.files import write_atomic

MAX_LINES = 500  # lines of one batch (the server takes up to 1000)
MAX_BYTES = 512 * 1024  # one batch's lines as JSON
AGENT_QUEUE = 1000  # agent lines held in memory while the server is away
LEVELS = ("debug", "info", "warning", "error")
STATE_VERSION = 1
_KEY = re.compile(r"^[^./][^/]*/[^./][^/]*$")  # <app>/<daemon>, never a way out


@dataclass(frozen=True)
class Batch:
    id: str  # 32 hex digits
    lines: list[Line]
    ends: Cursors = field(repr=False)  # every log's cursor once this batch is stored

    def body(self) -> dict[str, Any]:
        """What to POST to /v1/gateway/logs."""
        return {"batch": self.id, "lines": self.lines}


class LogShipper:
    def __init__(self, apps: Path, state: Path, *,
                 installed: Callable[[], Iterable[str]] | None = None,
                 max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES,
                 agent_queue: int = AGENT_QUEUE,
                 clock: Callable[[], float] = time.time) -> None:
        self.apps, self.state = apps, state
        self.installed = installed or self._folders
        self.max_lines, self.max_bytes, self.clock = max_lines, max_bytes, clock
        self.agent: deque[Line] = deque(maxlen=agent_queue)
        self.agent_dropped = 0
        self.cursors: Cursors = {}
        self.pending: Batch | None = None
        self.resume: tuple[str, Cursors] | None = None  # a batch unsent at the last stop
        self.turn = 0  # which log goes first: none starves the others
        self.on_disk = False  # whether the state file names a pending batch
        self.lock = threading.Lock()
        self._load()

    @classmethod
    def for_board(cls, board: Board, **options: Any) -> LogShipper:
        """The gateway's shipper (its data area must be unlocked)."""
        from edgeward.device.apps import store  # the apps' side only where it is used

        return cls(store.apps_dir(board), board.data_dir / "edgeward" / "logship.json",
                   installed=lambda: store.installed(board), **options)

    # --- intake ---------------------------------------------------------------------
    def ship_agent(self, text: str, level: str = "info") -> None:
        """Queue one of the agent's own lines (the oldest goes when the queue is full)."""
        text = clean(text)
        if not text:
            return
        with self.lock:
            if len(self.agent) == self.agent.maxlen:
                self.agent_dropped += 1
            self.agent.append({"time": self.clock(), "app": "", "source": "agent",
                               "level": level if level in LEVELS else "info", "text": text})

    # --- delivery -------------------------------------------------------------------
    def take(self, limit: int | None = None) -> Batch:
        """The next batch: the pending one again until it is :meth:`sent`; else new
        lines (agent lines first), at most ``limit`` lines and the byte cap. A batch
        with no lines is not pending. (Call take and sent from one thread; ship_agent
        from any, it never waits for the files to be read.)"""
        if self.pending is not None:
            return self.pending
        if self.resume is not None:
            ident, ends = self.resume
            self.resume = None
            lines, ends = self._read(ends, None, None)
            if lines:
                self.pending = Batch(ident, lines, ends)
                return self.pending
        most = max(1, min(limit or self.max_lines, self.max_lines))
        with self.lock:
            lines = self._agent_lines(most)
        left = self.max_bytes - sum(size(line) for line in lines)
        found, ends = self._read(None, most - len(lines), left)
        batch = Batch(os.urandom(16).hex(), lines + found, ends)
        if batch.lines:
            self.pending = batch
            if found:  # app lines can be read again after a restart: keep the id
                self._save(batch)
        return batch

    def sent(self, batch: Batch) -> None:
        """The server stored ``batch``: commit its offsets."""
        if batch.lines and (self.pending is None or batch.id != self.pending.id):
            raise StateError(f"batch {batch.id} is not the one pending")
        changed = batch.ends != self.cursors or self.on_disk
        self.cursors = dict(batch.ends)
        self.pending = None
        if changed:  # flash wears: no write when nothing moved
            self._save(None)

    def _agent_lines(self, most: int) -> list[Line]:
        lines: list[Line] = []
        if self.agent_dropped:
            lines.append({"time": self.clock(), "app": "", "source": "agent",
                          "level": "warning",
                          "text": f"{self.agent_dropped} agent log lines dropped while the "
                                  f"fleet server was away (more than {self.agent.maxlen} "
                                  "queued)"})
            self.agent_dropped = 0
        budget = self.max_bytes - sum(size(line) for line in lines)
        while self.agent and len(lines) < most:
            needed = size(self.agent[0])
            if lines and needed > budget:
                break
            lines.append(self.agent.popleft())  # the batch holds them from now on
            budget -= needed
        return lines

    # --- reading the apps' logs -----------------------------------------------------
    def _folders(self) -> list[str]:
        try:
            return sorted(p.name for p in self.apps.iterdir() if not p.name.startswith("."))
        except OSError:
            return []

    def _logs(self, known: Iterable[str]) -> dict[str, tuple[str, Path]]:
        """Every app log there is, and those followed so far (``known``: whether they
        are gone is for logfiles.segments to find): key -> (app, its current file)."""
        found: dict[str, tuple[str, Path]] = {}
        for key in known:
            app, _, daemon = key.partition("/")
            found[key] = (app, self.apps / app / "logs" / f"{daemon}.log")
        for app in self.installed():
            folder = self.apps / app / "logs"
            try:
                names = sorted(p.name for p in folder.iterdir())
            except OSError:
                continue
            for name in names:
                daemon = name[:-4] if name.endswith(".log") else name[:-6]
                if (name.endswith(".log") or name.endswith(".log.1")) and daemon:
                    found[f"{app}/{daemon}"] = (app, folder / f"{daemon}.log")
        return found

    def _read(self, stop: Cursors | None, most: int | None, budget: int | None
              ) -> tuple[list[Line], Cursors]:
        """App lines from the committed cursors on (to ``stop``, or the caps), each log
        first in its turn; and the cursors after them."""
        logs = self._logs(self.cursors)
        keys = sorted(logs)
        if keys:
            self.turn = (self.turn + 1) % len(keys)
            keys = keys[self.turn:] + keys[:self.turn]
        gather = Gather(most, budget)
        ends = read(logs, keys, self.cursors, stop, gather, self.clock)
        return gather.lines, ends

    # --- state ----------------------------------------------------------------------
    def _load(self) -> None:
        try:
            data = json.loads(self.state.read_bytes())
            self.cursors = {str(k): Cursor.load(v)
                            for k, v in data["files"].items() if _KEY.match(str(k))}
            pending = data.get("pending")
            if pending and re.fullmatch(r"[0-9a-f]{32}", str(pending["id"])):
                self.on_disk = True
                self.resume = (str(pending["id"]), {
                    str(k): Cursor.load(v) for k, v in pending["files"].items()
                    if _KEY.match(str(k))})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.cursors, self.resume = {}, None  # none yet, or unreadable: from the start
            self.on_disk = False

    def _save(self, pending: Batch | None) -> None:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "files": {k: c.dump() for k, c in sorted(self.cursors.items())},
            "pending": None if pending is None else {
                "id": pending.id,
                "files": {k: c.dump() for k, c in sorted(pending.ends.items())}}}
        try:
            self.state.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.state, json.dumps(data).encode(), mode=0o600)
        except OSError:  # a full data area: carry on from memory
            return
        self.on_disk = pending is not None
