"""Security events on their way to the fleet server: sent at once, limited per source,
kept on disk while the server is away.

A looping app cannot flood the fleet, nor crowd out its neighbours' reports: each
(app, kind) and each app as a whole has a token bucket (a burst, then a steady rate,
well under what the fleet server takes from a gateway); what they suppress is counted
and reported as one summary event once the source calms down. Identical events close
together are merged into one with a count. Pending events survive an agent restart
(a JSON spool under the agent's data, replaced atomically) up to a cap, past which
the oldest are dropped and the drop itself becomes an event.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.errors import one_line
from edgeward.files import write_atomic

KINDS = ("syscall", "file", "network", "signal", "dbus", "limit", "crash-loop", "suppressed",
         "sandbox", "login", "listen", "remote", "exec", "boot", "update", "audit")
MERGE_WINDOW = 2.0  # seconds within which identical events become one with a count


@dataclass
class SecurityEvent:
    time: float  # epoch seconds
    app: str  # "" for the gateway itself
    kind: str
    what: str  # one line for a person
    detail: dict[str, Any] = field(default_factory=dict)
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        """As the server takes it: one line of at most 300 characters, a small detail of
        plain values (an app chooses the paths it reaches for: a newline or a huge name
        in one must not make the server refuse the batch)."""
        return {"time": self.time, "app": self.app, "kind": self.kind,
                "what": one_line(self.what)[:300] or "?",
                "detail": {one_line(str(k))[:40]: _plain(v)
                           for k, v in list(self.detail.items())[:12]},
                "count": max(1, self.count)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SecurityEvent:
        return cls(float(data["time"]), str(data["app"]), str(data["kind"]),
                   str(data["what"]), dict(data.get("detail", {})), int(data.get("count", 1)))


def _plain(value: Any) -> Any:
    """A detail value the server takes: a number, a flag, or at most 120 bytes of text."""
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return one_line(str(value)).encode()[:120].decode("utf-8", errors="ignore")


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    suppressed: int = 0
    first_suppressed: float = 0.0


class Outbox:
    def __init__(self, spool: Path | None, burst: int = 20, rate: float = 1.0,
                 cap: int = 5000, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, app_burst: int = 40,
                 app_rate: float = 1.0) -> None:
        self.spool, self.burst, self.rate, self.cap = spool, burst, rate, cap
        self.app_burst, self.app_rate = app_burst, app_rate
        self.apps: dict[str, _Bucket] = {}  # one app, all kinds: no app crowds the others
        self.clock, self.wall = clock, wall
        self.pending: deque[SecurityEvent] = deque()
        self.buckets: dict[tuple[str, str], _Bucket] = {}
        self.dropped = 0  # lost to the cap (reported, then reset)
        self.sending = 0  # how many of the oldest pending are on their way
        self.batch_id = ""  # their batch's id
        self.accepted = 0
        self.suppressed_total = 0
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self._load()

    # --- intake ---------------------------------------------------------------------
    def add(self, event: SecurityEvent) -> bool:
        """Queue ``event`` unless its source is over its rate (then it is counted)."""
        with self.lock:
            now = self.clock()
            key = (event.app, event.kind)
            bucket = self._refill(self.buckets, key, self.burst, self.rate, now)
            whole = self._refill(self.apps, event.app, self.app_burst, self.app_rate, now)
            if self._merge(event):
                return True
            if bucket.tokens < 1.0 or whole.tokens < 1.0:
                if not bucket.suppressed:
                    bucket.first_suppressed = event.time
                bucket.suppressed += event.count
                self.suppressed_total += event.count
                return False
            bucket.tokens -= 1.0
            whole.tokens -= 1.0
            self._summarise(key, bucket)
            self._append(event)
            return True

    @staticmethod
    def _refill(buckets: dict[Any, _Bucket], key: Any, burst: int, rate: float,
                now: float) -> _Bucket:
        bucket = buckets.setdefault(key, _Bucket(float(burst), now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        return bucket

    def _merge(self, event: SecurityEvent) -> bool:
        """Count ``event`` into a queued one like it, unless that one is being sent (its
        count has left already)."""
        for index in range(len(self.pending) - 1, self.sending - 1, -1):
            queued = self.pending[index]
            if event.time - queued.time > MERGE_WINDOW:
                break
            if (queued.app, queued.kind, queued.what) == (event.app, event.kind, event.what):
                queued.count += event.count
                return True
        return False

    def _summarise(self, key: tuple[str, str], bucket: _Bucket) -> None:
        if bucket.suppressed:
            app, kind = key
            self._append(SecurityEvent(
                bucket.first_suppressed, app, "suppressed",
                f"{bucket.suppressed} more {kind} events of {app or 'the gateway'} "
                "suppressed (rate limit)", {"kind": kind}, bucket.suppressed))
            bucket.suppressed = 0

    def _append(self, event: SecurityEvent) -> None:
        self.pending.append(event)
        self.accepted += 1
        while len(self.pending) > self.cap:  # the oldest not on its way goes
            del self.pending[min(self.sending, len(self.pending) - 1)]
            self.dropped += 1
        self.ready.set()

    def flush_suppressed(self) -> None:
        """Summaries for sources that went quiet while suppressed."""
        with self.lock:
            now = self.clock()
            for key, bucket in self.buckets.items():
                if bucket.suppressed and now - bucket.stamp >= 1.0 / max(self.rate, 1e-6):
                    self._summarise(key, bucket)

    # --- delivery -------------------------------------------------------------------
    def take(self, limit: int = 500) -> list[SecurityEvent]:
        """The oldest pending events (they stay queued until :meth:`sent`). A batch not
        yet confirmed is taken again as it was, under the same :attr:`batch_id`, so the
        server, which keeps the ids it stored, does not store it twice."""
        with self.lock:
            if self.sending:
                return list(self.pending)[:self.sending]
            self.batch_id = os.urandom(16).hex()
            if self.dropped:
                self.pending.appendleft(SecurityEvent(
                    self.wall(), "", "suppressed",
                    f"{self.dropped} events dropped while the fleet server was away "
                    f"(more than {self.cap} queued)", {}, self.dropped))
                self.dropped = 0
            batch = list(self.pending)[:limit]
            self.sending = len(batch)
            if not batch:
                self.ready.clear()
            return batch

    def sent(self, batch: list[SecurityEvent]) -> None:
        with self.lock:
            for _ in range(min(len(batch), len(self.pending))):
                self.pending.popleft()
            self.sending = 0
            if not self.pending:
                self.ready.clear()
        self.save()

    def save(self) -> None:
        """Keep what is pending on disk (an empty spool is removed)."""
        if self.spool is None:
            return
        with self.lock:
            data = [e.to_dict() for e in self.pending]
        try:
            if data:
                write_atomic(self.spool, json.dumps(data).encode(), mode=0o600)
            else:
                self.spool.unlink(missing_ok=True)
        except OSError:  # a full data area (an app may fill it): they stay in memory
            return

    def _load(self) -> None:
        if self.spool is None or not self.spool.exists():
            return
        try:
            for item in json.loads(self.spool.read_text())[-self.cap:]:
                self.pending.append(SecurityEvent.from_dict(item))
        except (OSError, ValueError, KeyError, TypeError):
            self.spool.unlink(missing_ok=True)  # unreadable: start afresh, not stuck
        if self.pending:
            self.ready.set()
