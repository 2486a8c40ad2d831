"""How many log lines a gateway may ship: a token bucket per gateway, in memory.

An app that logs in a loop, or a gateway that is no longer ours, must not fill the
fleet's log store. Each gateway may send ``burst`` lines at once, then ``rate`` a
second. A batch is taken whole or not at all: one the bucket cannot cover is refused
with the seconds until it could (HTTP 429, Retry-After), nothing of it stored, and the
agent sends it again then, under the same id. So a gateway catching up after an outage
loses nothing, only time; what a looping app writes beyond that waits in the gateway's
bounded log files, whose rotation drops the oldest there.

A gateway that has pressed against its quota for ``FLOOD_AFTER`` (refused, and never
back above half its burst since) raises a ``logs.flood`` alert: a catch-up ends
sooner, a loop does not. The buckets live in this server process, as the cohorts'
levels do: a restart refills them (one more burst at most). A bucket that has refilled
is forgotten, so memory follows the gateways that are logging now, not the fleet.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

from edgeward.server.services.intake import refill

FLOOD = "logs.flood"
BURST = 5000  # lines a gateway may send at once ...
RATE = 50.0  # ... and per second after that (4.3 M lines a day)
FLOOD_AFTER = dt.timedelta(minutes=10)
_SWEEP_FROM = 1024  # buckets held before the full ones are swept


def admit(tokens: float, last: dt.datetime, now: dt.datetime, wanted: int, burst: int,
          rate: float) -> tuple[bool, float, float]:
    """The bucket, pure: whether a batch of ``wanted`` passes whole now, the tokens then
    left, and (refused) the seconds until it would pass. A batch larger than the burst
    passes on a full bucket, its excess owed (the bucket is intake.py's)."""
    available = refill(tokens, last, now, burst, rate)
    need = min(wanted, burst)
    if available >= need:
        return True, available - wanted, 0.0
    return False, available, (need - available) / rate


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    retry_after: float = 0.0  # refused: seconds until the batch would pass
    flooding: bool = False  # refused, and pressed against the quota for FLOOD_AFTER


@dataclass
class _Bucket:
    tokens: float
    last: dt.datetime
    pressed_since: dt.datetime | None = None


class LogQuota:
    def __init__(self, burst: int = BURST, rate: float = RATE) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("a log quota takes a burst of at least 1 and a positive rate")
        self.burst, self.rate = burst, rate
        self._buckets: dict[int, _Bucket] = {}
        self._sweep_at = _SWEEP_FROM
        self._lock = threading.Lock()

    def take(self, gateway_id: int, wanted: int, now: dt.datetime) -> Verdict:
        """Whether the gateway may store a batch of ``wanted`` lines now."""
        with self._lock:
            bucket = self._buckets.get(gateway_id) or _Bucket(float(self.burst), now)
            admitted, bucket.tokens, wait = admit(bucket.tokens, bucket.last, now, wanted,
                                                  self.burst, self.rate)
            bucket.last = now
            self._buckets[gateway_id] = bucket
            if admitted:
                if bucket.tokens >= self.burst / 2:
                    bucket.pressed_since = None  # it eased off: a catch-up that ended
                verdict = Verdict(True)
            else:
                bucket.pressed_since = bucket.pressed_since or now
                verdict = Verdict(False, wait, now - bucket.pressed_since >= FLOOD_AFTER)
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            return verdict

    def held(self) -> int:
        """Buckets in memory (gateways that logged lately)."""
        with self._lock:
            return len(self._buckets)

    def _sweep(self, now: dt.datetime) -> None:
        """Forget the buckets that are full again: a new one starts full."""
        refill = dt.timedelta(seconds=self.burst / self.rate)
        self._buckets = {g: b for g, b in self._buckets.items() if now - b.last < refill}
        self._sweep_at = max(_SWEEP_FROM, 2 * len(self._buckets))
