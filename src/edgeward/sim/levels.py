"""The cohort's level now, as :class:`edgeward.server.detection.watch.CohortNow` gives it
(the median of the other gateways' latest values), for a whole simulated cohort at once.

``CohortNow.level`` sorts the cohort's values on every call: fine for one report, not
for a thousand gateways times ten metrics times 2,880 reports. Here each metric keeps
its gateways' latest values in one sorted list (a report moves its gateway's value), and
the median without the asking gateway's own value is read off that list by index. A
gateway that stops reporting (a reboot) drops out after the horizon, checked once a
step. Same answers as ``CohortNow`` (tests/sim/test_levels.py compares them).
"""

from __future__ import annotations

from bisect import bisect_left, insort

from edgeward.server.detection.watch import MIN_COHORT


class Levels:
    def __init__(self, horizon: float = 90.0) -> None:
        self.horizon = horizon
        self._sorted: dict[str, list[float]] = {}
        self._mine: dict[str, dict[str, float]] = {}  # key -> gateway -> its value
        self._seen: dict[str, float] = {}  # gateway -> its last report

    def record(self, gateway: str, at: float, values: dict[str, float]) -> None:
        self._seen[gateway] = at
        for key, value in values.items():
            if key not in self._sorted:
                self._sorted[key], self._mine[key] = [], {}
            ordered, mine = self._sorted[key], self._mine[key]
            old = mine.get(gateway)
            if old is not None:
                del ordered[bisect_left(ordered, old)]
            insort(ordered, value)
            mine[gateway] = value

    def expire(self, now: float) -> None:
        """Forget the values of gateways silent for longer than the horizon."""
        gone = [g for g, at in self._seen.items() if now - at > self.horizon]
        for gateway in gone:
            del self._seen[gateway]
            for key, mine in self._mine.items():
                old = mine.pop(gateway, None)
                if old is not None:
                    ordered = self._sorted[key]
                    del ordered[bisect_left(ordered, old)]

    def level(self, key: str, gateway: str) -> float | None:
        """The median of the other gateways' values, if at least ``MIN_COHORT``."""
        ordered = self._sorted.get(key)
        if not ordered:
            return None
        own = self._mine[key].get(gateway)
        if own is None:
            skip, n = len(ordered), len(ordered)
        else:
            skip, n = bisect_left(ordered, own), len(ordered) - 1
        if n < MIN_COHORT:
            return None

        def nth(j: int) -> float:
            return ordered[j] if j < skip else ordered[j + 1]

        middle = n // 2
        return nth(middle) if n % 2 else (nth(middle - 1) + nth(middle)) / 2
