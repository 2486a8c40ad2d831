"""Telemetry reports waiting for the fleet server: a bounded queue, kept on disk.

While the server is away, reports pile up to ``cap`` (a day at 30 s by default); past
it the oldest go first, and how many went is told once the server is back (the
caller reports it as an event). A batch on its way is taken again, unchanged and
under the same id, until it is confirmed: the server keeps the ids it stored, so a
batch whose answer was lost is not stored twice (at least once, idempotent).
The queue is a JSON file replaced atomically (0600), written when it changes.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

from edgeward.files import write_atomic

CAP = 2880
BATCH = 60  # reports a batch, as the server takes them


class ReportSpool:
    def __init__(self, path: Path | None, cap: int = CAP) -> None:
        self.path, self.cap = path, cap
        self.pending: deque[dict[str, Any]] = deque()
        self.sending = 0
        self.batch_id = ""
        self.dropped = 0  # since last told
        self.lock = threading.Lock()
        self._load()

    def add(self, report: dict[str, Any]) -> None:
        with self.lock:
            self.pending.append(report)
            while len(self.pending) > self.cap:
                if self.sending >= len(self.pending):  # everything is on its way
                    self.sending -= 1
                del self.pending[min(self.sending, len(self.pending) - 1)]
                self.dropped += 1

    def take(self, limit: int = BATCH) -> tuple[str, list[dict[str, Any]]]:
        """(batch id, the oldest reports): the same again until :meth:`sent`."""
        with self.lock:
            if not self.sending:
                self.batch_id = os.urandom(16).hex()
                self.sending = min(limit, len(self.pending))
            return self.batch_id, list(self.pending)[:self.sending]

    def sent(self) -> None:
        with self.lock:
            for _ in range(min(self.sending, len(self.pending))):
                self.pending.popleft()
            self.sending = 0
        self.save()

    def told_dropped(self) -> int:
        """How many were dropped since the last call (to report once)."""
        with self.lock:
            count, self.dropped = self.dropped, 0
            return count

    def __len__(self) -> int:
        return len(self.pending)

    def save(self) -> None:
        if self.path is None:
            return
        with self.lock:
            data = {"pending": list(self.pending), "sending": self.sending,
                    "batch": self.batch_id}
        try:
            if data["pending"]:
                write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode(),
                             mode=0o600)
            else:
                self.path.unlink(missing_ok=True)
        except OSError:  # a full data area: they stay in memory
            return

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            pending = [dict(r) for r in data["pending"]][-self.cap:]
            sending, batch = int(data.get("sending", 0)), str(data.get("batch", ""))
        except (OSError, ValueError, KeyError, TypeError):
            self.path.unlink(missing_ok=True)  # unreadable: start afresh, not stuck
            return
        self.pending.extend(pending)
        if 0 < sending <= len(pending) and len(batch) == 32:
            self.sending, self.batch_id = sending, batch  # resent under its id
