"""One metric of one gateway, watched: its baseline, its drift test, and the judgement
of what an anomaly means.

An anomaly the baseline opens is raised, unless something else explains it:

- ``after-change``: the gateway has just booted or changed release (a rollout, a reboot
  storm): the baseline then learns the new level instead of alerting;
- ``cohort``: the rest of its cohort is at the same level right now, or moved as much
  (a busy hour, an outage, a release that costs more CPU everywhere): one notice for
  the cohort, not an alert per gateway. If the gateway then parts from its cohort (a
  miner during the busy hour), the anomaly is raised after all.

The cohort's level is the median of the other gateways' latest values, in
:class:`CohortNow` (None when fewer than ``MIN_COHORT`` report). Pure: values in,
signals out; the state is a dict for the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeward.errors import InputError
from edgeward.server.detection import metrics
from edgeward.server.detection.baseline import (
    MAD_TO_SIGMA,
    Baseline,
    Prior,
    Settings,
    median_sorted,
)
from edgeward.server.detection.drift import Drift

MIN_COHORT = 3  # other gateways reporting, for their level to explain anything


@dataclass(frozen=True)
class Signal:
    kind: str  # anomaly, recovered, drift, cohort-shift, after-change
    key: str
    value: float
    expected: float
    z: float
    severity: str = "medium"

    @property
    def app(self) -> str:
        return metrics.split(self.key)[0]

    def describe(self) -> str:
        what = metrics.describe(self.key)
        if self.kind == "anomaly":
            return f"{what} at {self.value:.4g}, usually {self.expected:.4g} (z {self.z:.1f})"
        if self.kind == "drift":
            return f"{what} creeping up: {self.value:.4g}, usually {self.expected:.4g}"
        if self.kind == "recovered":
            return f"{what} back to normal ({self.value:.4g})"
        return f"{what} at {self.value:.4g}, usually {self.expected:.4g}: {self.kind}"


@dataclass
class MetricWatch:
    key: str
    baseline: Baseline
    drift: Drift | None = None
    suppressed: str = ""  # why the open anomaly was not raised ("" when raised or none)

    @classmethod
    def new(cls, key: str, prior: Prior | None = None) -> MetricWatch:
        spec = metrics.spec_of(key)
        if spec is None:
            raise InputError(f"metric {key!r} is not watched")
        drift = Drift(*spec.drift) if spec.drift else None
        return cls(key, Baseline(prior or spec.prior, Settings(min_mad=spec.min_mad)), drift)

    def observe(self, value: float, cohort: float | None = None,
                fresh: bool = False) -> list[Signal]:
        """Judge one sample; ``cohort``: the cohort's level now (raw), ``fresh``: the
        gateway booted or changed release moments ago."""
        spec = metrics.spec_of(self.key)
        assert spec is not None
        scaled = metrics.scale(spec, value)
        verdict = self.baseline.observe(scaled)
        expected = metrics.unscale(spec, verdict.expected)
        base = self.baseline

        def signal(kind: str, z: float = verdict.z) -> Signal:
            severity = "high" if abs(z) >= 2 * base.settings.enter_z else "medium"
            return Signal(kind, self.key, value, expected, round(z, 2),
                          "low" if kind in ("cohort-shift", "after-change", "recovered")
                          else severity)

        out: list[Signal] = []
        explained = cohort is not None and abs(self._z_against(scaled, spec, cohort)) \
            < base.settings.enter_z
        if verdict.change == "opened":
            reason = "after-change" if fresh else "cohort" if explained else ""
            if reason:
                self.suppressed = reason
                base.warming = True  # learn the new level rather than alert on it
                out.append(signal("after-change" if fresh else "cohort-shift"))
            else:
                out.append(signal("anomaly"))
        elif verdict.change == "closed":
            if not self.suppressed:
                out.append(signal("recovered"))
            self.suppressed = ""
        elif (base.anomalous and self.suppressed == "cohort" and cohort is not None
              and not explained):
            self.suppressed, base.warming = "", False  # it parted from its cohort
            out.append(signal("anomaly"))
        if self.drift is not None:
            reference = metrics.scale(spec, cohort) if cohort is not None else verdict.expected
            if self.drift.observe(scaled - reference) and not base.anomalous and not fresh:
                out.append(signal("drift"))
        return out

    def _z_against(self, scaled: float, spec: metrics.MetricSpec, cohort: float) -> float:
        """How far the sample is from where the cohort's move puts it: the cohort's level
        now, or the gateway's own level moved as the cohort moved from its usual (a
        gateway that runs hotter than its cohort stays hotter in the busy hour); the
        nearer of the two."""
        median, mad = self.baseline.centre()
        level, usual = metrics.scale(spec, cohort), self.baseline.prior.median
        moved = median * level / usual if not spec.log and usual > 0 else \
            median + level - usual
        return min(MAD_TO_SIGMA * (scaled - level) / mad,
                   MAD_TO_SIGMA * (scaled - moved) / mad, key=abs)

    # --- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline.to_dict(), "suppressed": self.suppressed,
                "drift": self.drift.to_dict() if self.drift else None}

    @classmethod
    def from_dict(cls, key: str, data: dict[str, Any], prior: Prior | None = None
                  ) -> MetricWatch:
        made = cls.new(key, prior)
        try:
            made.baseline = Baseline.from_dict(data["baseline"], made.baseline.prior,
                                               made.baseline.settings)
            made.suppressed = str(data.get("suppressed", ""))
            if made.drift is not None and data.get("drift"):
                made.drift = Drift.from_dict(data["drift"])
        except (KeyError, TypeError) as e:
            raise InputError(f"detector state of {key!r}: malformed") from e
        return made


@dataclass
class CohortNow:
    """The latest value of each metric from each gateway of one cohort, for the cohort's
    level now (pure; the server keeps one per cohort in memory)."""

    horizon: float = 90.0  # seconds a value stands for its gateway
    latest: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    def record(self, gateway: str, at: float, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.latest.setdefault(key, {})[gateway] = (at, value)

    def level(self, key: str, gateway: str, now: float) -> float | None:
        """The median of the other gateways' recent values, if enough report."""
        others = sorted(value for who, (at, value) in self.latest.get(key, {}).items()
                        if who != gateway and now - at <= self.horizon)
        return median_sorted(others) if len(others) >= MIN_COHORT else None

    def reporting(self, now: float) -> int:
        return len({who for series in self.latest.values()
                    for who, (at, _) in series.items() if now - at <= self.horizon})
