"""A robust per-gateway baseline for one metric: median/MAD z-scores with hysteresis.

The cloud anchors alert on fixed thresholds over 5-minute windows, or wait two weeks
for a model. Here every sample is judged as it arrives:

- the baseline is the median and the MAD (median absolute deviation) of a sliding
  window of the gateway's own recent samples, blended with its cohort's prior (the same
  metric across gateways of the same model and apps), counted as ``prior_weight``
  pseudo-samples: a new gateway is judged from its first sample, and its own history
  takes over as it accumulates;
- ``z = 0.6745 (x - median) / MAD`` (for normal data the MAD is 0.6745 sigma), with the
  MAD floored at ``min_mad`` so that a flat metric does not turn every wiggle into an
  anomaly, and median and MAD being robust, a few outliers barely move them;
- hysteresis: an anomaly opens after ``enter_after`` consecutive samples at
  ``|z| >= enter_z`` and closes after ``exit_after`` consecutive samples below
  ``exit_z``; once the gateway has ``prior_weight`` samples of its own, samples that
  are anomalous, or about to be, are not learnt, so the baseline does not learn the
  attack it is watching. Before that everything is learnt, and so is every sample of an
  anomaly that opened before it: a gateway whose normal differs from its cohort's is
  flagged (it is rare in its cohort), then finds its own level, and the flag closes
  instead of staying up for ever.

Pure: values in, verdicts out; the state serialises to a dict for the database.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from edgeward.errors import InputError

MAD_TO_SIGMA = 0.6745


@dataclass(frozen=True)
class Prior:
    """The cohort's view of the metric: what a new gateway starts from."""

    median: float
    mad: float
    weight: int = 30  # how many of its own samples it takes to outweigh the cohort


@dataclass(frozen=True)
class Settings:
    window: int = 240  # samples kept (2 hours at 30 s)
    enter_z: float = 6.0
    exit_z: float = 3.0
    enter_after: int = 2
    exit_after: int = 3
    min_mad: float = 1.0  # in the metric's unit (1 percentage point for CPU)
    refresh: int = 8  # samples learnt between two computations of median and MAD

    def __post_init__(self) -> None:
        if not (self.window >= 3 and 0 < self.exit_z < self.enter_z and
                self.enter_after >= 1 and self.exit_after >= 1 and self.min_mad > 0
                and self.refresh >= 1):
            raise InputError("baseline settings: need window >= 3, 0 < exit_z < enter_z, "
                             "enter_after, exit_after and refresh >= 1, min_mad > 0")


@dataclass(frozen=True)
class Verdict:
    z: float
    anomalous: bool  # inside an open anomaly after this sample
    change: str | None = None  # "opened" or "closed" at this sample
    expected: float = 0.0  # the baseline's median when the sample came


@dataclass
class Baseline:
    prior: Prior
    settings: Settings = field(default_factory=Settings)
    samples: deque[float] = field(default_factory=deque)
    anomalous: bool = False
    streak: int = 0  # consecutive samples pointing to the other state
    pending: list[float] = field(default_factory=list)  # held back while a streak builds
    warming: bool = False  # the open anomaly began before the gateway had its own level
    _cached: tuple[float, float] | None = field(default=None, repr=False, compare=False)
    _unseen: int = field(default=0, repr=False, compare=False)  # learnt since computed

    def centre(self) -> tuple[float, float]:
        """The blended median and MAD. Recomputed after every ``refresh`` samples learnt
        (and always while the window is short): a window of hundreds moves slowly, and a
        fleet's worth of medians per interval must stay cheap."""
        if self._cached is not None and self._unseen < self.settings.refresh:
            return self._cached
        n, w = len(self.samples), self.prior.weight
        if n == 0:
            self._cached = self.prior.median, max(self.prior.mad, self.settings.min_mad)
        else:
            ordered = sorted(self.samples)
            own = median_sorted(ordered)
            spread = statistics.median(abs(x - own) for x in ordered)
            median = (w * self.prior.median + n * own) / (w + n)
            mad = (w * self.prior.mad + n * spread) / (w + n)
            self._cached = median, max(mad, self.settings.min_mad)
        self._unseen = 0
        return self._cached

    def score(self, value: float) -> float:
        median, mad = self.centre()
        return MAD_TO_SIGMA * (value - median) / mad

    @property
    def established(self) -> bool:
        """Enough of its own samples to outweigh the cohort."""
        return len(self.samples) >= self.prior.weight

    def observe(self, value: float) -> Verdict:
        median, _ = self.centre()
        z = self.score(value)
        learning = not self.established or (self.anomalous and self.warming)
        held = [] if learning else self.pending
        if learning:  # judged by the cohort, but learnt whatever it is: a gateway whose
            self._learn(value)  # normal differs from its cohort's finds its own level
            self.pending.clear()
        s = self.settings
        change = None
        if not self.anomalous:
            if abs(z) >= s.enter_z:
                self.streak += 1
                held.append(value)
                if self.streak >= s.enter_after:
                    self.anomalous, self.streak, change = True, 0, "opened"
                    self.warming = not self.established
                    self.pending.clear()  # never learnt: they were the anomaly
            else:
                if held is self.pending:
                    self._learn(*self.pending, value)  # a lone spike was only a spike
                self.pending.clear()
                self.streak = 0
        else:
            if abs(z) < s.exit_z:
                self.streak += 1
                held.append(value)
                if self.streak >= s.exit_after:
                    self.anomalous, self.streak, change = False, 0, "closed"
                    self.warming = False
                    self._learn(*self.pending)
                    self.pending.clear()
            else:
                self.streak = 0
                self.pending.clear()
        return Verdict(z, self.anomalous, change, median)

    def _learn(self, *values: float) -> None:
        if values:
            # a short window changes a lot with each sample: recompute at once
            self._unseen = (self._unseen + len(values)
                            if len(self.samples) >= self.prior.weight else self.settings.refresh)
        for value in values:
            self.samples.append(value)
            while len(self.samples) > self.settings.window:
                self.samples.popleft()

    # --- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"samples": list(self.samples), "anomalous": self.anomalous,
                "streak": self.streak, "pending": list(self.pending),
                "warming": self.warming}

    @classmethod
    def from_dict(cls, data: dict[str, Any], prior: Prior,
                  settings: Settings | None = None) -> Baseline:
        try:
            samples = [float(x) for x in data["samples"]]
            pending = [float(x) for x in data["pending"]]
            anomalous, streak = bool(data["anomalous"]), int(data["streak"])
            warming = bool(data.get("warming", False))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError("baseline state: malformed") from e
        made = cls(prior, settings or Settings(), deque(samples), anomalous, streak, pending,
                   warming)
        while len(made.samples) > made.settings.window:  # a smaller window than before
            made.samples.popleft()
        return made


def median_sorted(ordered: list[float]) -> float:
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def cohort_prior(medians: list[float], weight: int = 30) -> Prior:
    """A cohort's prior from its gateways' own medians of the metric."""
    if not medians:
        raise InputError("a cohort prior needs at least one gateway")
    centre = statistics.median(medians)
    return Prior(centre, statistics.median(abs(m - centre) for m in medians), weight)
