"""How many log lines a gateway may ship: a token bucket per gateway, in memory.

An app that logs in a loop, or a gateway that is no longer ours, must not fill the
fleet's log store. Each gateway may send ``burst`` lines at once, then ``rate`` a
second (the bucket is intake.py's, as security events have); the lines past that are
dropped and counted in the answer, and the first drop raises a ``logs.flood`` alert
(once per gateway per quiet window, as every alert). The buckets live in this server
process, as the cohorts' levels do: a restart refills them, which lets a gateway send
at most one more burst. A bucket that has refilled is forgotten, so memory follows the
gateways that are logging now, not the fleet's size.
"""

from __future__ import annotations

import datetime as dt
import threading

from edgeward.server.services.intake import take

FLOOD = "logs.flood"
BURST = 5000  # lines a gateway may send at once ...
RATE = 50.0  # ... and per second after that (4.3 M lines a day)
_PRUNE_FROM = 1024  # buckets held before the full ones are swept


class LogQuota:
    def __init__(self, burst: int = BURST, rate: float = RATE) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("a log quota takes a burst of at least 1 and a positive rate")
        self.burst, self.rate = burst, rate
        self._buckets: dict[int, tuple[float, dt.datetime]] = {}
        self._sweep_at = _PRUNE_FROM
        self._lock = threading.Lock()

    def take(self, gateway_id: int, wanted: int, now: dt.datetime) -> int:
        """How many of ``wanted`` lines the gateway may store now (the first ones)."""
        with self._lock:
            tokens, last = self._buckets.get(gateway_id, (float(self.burst), now))
            passed, left = take(tokens, last, now, wanted, self.burst, self.rate)
            self._buckets[gateway_id] = (left, now)
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            return passed

    def held(self) -> int:
        """Buckets in memory (gateways that logged lately)."""
        with self._lock:
            return len(self._buckets)

    def _sweep(self, now: dt.datetime) -> None:
        """Forget the buckets that are full again: a new one starts full."""
        refill = dt.timedelta(seconds=self.burst / self.rate)
        self._buckets = {g: (tokens, last) for g, (tokens, last) in self._buckets.items()
                         if now - last < refill}
        self._sweep_at = max(_PRUNE_FROM, 2 * len(self._buckets))
