"""Slow drift of one metric: the Page-Hinkley test.

A z-score catches jumps; a metric that creeps (slow exfiltration: a little more sent
each hour) never jumps. Page-Hinkley accumulates how far each sample lies above the
running mean, less an allowance ``delta``; when that sum rises more than ``threshold``
above its lowest point, the mean has moved up for good. Only upward drift is watched
(what an attacker adds); the test restarts after it fires. Pure, serialisable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeward.errors import InputError


@dataclass
class Drift:
    delta: float  # the change per sample that is tolerated (the metric's unit)
    threshold: float  # how far the cumulative excess must rise to call it a drift
    count: int = 0
    mean: float = 0.0
    cumulative: float = 0.0
    lowest: float = 0.0

    def __post_init__(self) -> None:
        if self.delta < 0 or self.threshold <= 0:
            raise InputError("drift: delta >= 0 and threshold > 0")

    def observe(self, value: float) -> bool:
        """Feed one sample; True when a sustained upward drift is detected."""
        self.count += 1
        self.mean += (value - self.mean) / self.count
        self.cumulative += value - self.mean - self.delta
        self.lowest = min(self.lowest, self.cumulative)
        if self.cumulative - self.lowest > self.threshold:
            self.count, self.mean, self.cumulative, self.lowest = 0, 0.0, 0.0, 0.0
            return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drift:
        try:
            return cls(float(data["delta"]), float(data["threshold"]), int(data["count"]),
                       float(data["mean"]), float(data["cumulative"]),
                       float(data["lowest"]))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError("drift state: malformed") from e
