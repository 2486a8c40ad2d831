"""Cohorts in the server's memory: gateways of the same model running the same apps.

For each cohort, the latest value of every metric from every gateway (the cohort's level
now, which explains a shift they share), and each gateway's baseline median (whose
median and spread are the prior a new gateway of the cohort starts from). Both are
rebuilt within one report interval after a restart; until then a new gateway starts
from the metric's default prior and no shift is explained.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgeward.server.detection import metrics
from edgeward.server.detection.baseline import Prior, cohort_prior
from edgeward.server.detection.watch import MIN_COHORT, CohortNow


def cohort_of(model: str, apps: Iterable[str]) -> str:
    """``model/<hash of the app set>``: the same for gateways of one model and apps."""
    names = ",".join(sorted(set(apps)))
    return f"{model[:40]}/{hashlib.sha256(names.encode()).hexdigest()[:12]}"


@dataclass
class _Cohort:
    now: CohortNow = field(default_factory=CohortNow)
    medians: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> gw -> median


class Cohorts:
    def __init__(self, horizon: float = 90.0) -> None:
        self.horizon = horizon
        self._cohorts: dict[str, _Cohort] = {}
        self._lock = threading.Lock()

    def _get(self, cohort: str) -> _Cohort:
        found = self._cohorts.get(cohort)
        if found is None:
            found = self._cohorts[cohort] = _Cohort(CohortNow(self.horizon))
        return found

    def record(self, cohort: str, gateway: str, at: float, values: dict[str, float]) -> None:
        with self._lock:
            self._get(cohort).now.record(gateway, at, values)

    def level(self, cohort: str, key: str, gateway: str, at: float) -> float | None:
        with self._lock:
            return self._get(cohort).now.level(key, gateway, at)

    def reporting(self, cohort: str, at: float) -> int:
        with self._lock:
            return self._get(cohort).now.reporting(at)

    def learnt(self, cohort: str, gateway: str, key: str, median: float) -> None:
        """A gateway's own baseline median (on the judged scale) after a report."""
        with self._lock:
            self._get(cohort).medians.setdefault(key, {})[gateway] = median

    def prior(self, cohort: str, key: str, gateway: str) -> Prior | None:
        """The cohort's prior for ``key`` from the other gateways' medians, or the
        metric's default when too few are known."""
        spec = metrics.spec_of(key)
        if spec is None:
            return None
        with self._lock:
            medians = [m for who, m in self._get(cohort).medians.get(key, {}).items()
                       if who != gateway]
        if len(medians) < MIN_COHORT:
            return spec.prior
        made = cohort_prior(medians, spec.prior.weight)
        # the cohort's spread of medians, but never tighter than the metric's default
        return Prior(made.median, max(made.mad, spec.prior.mad), made.weight)

    def forget(self, gateway: str) -> None:
        with self._lock:
            for cohort in self._cohorts.values():
                for series in cohort.now.latest.values():
                    series.pop(gateway, None)
                for medians in cohort.medians.values():
                    medians.pop(gateway, None)
