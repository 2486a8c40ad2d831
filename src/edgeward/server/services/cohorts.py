"""Cohorts in the server's memory: gateways of the same model running the same apps.

For each cohort, the latest value of every metric from every gateway (the cohort's level
now, which explains a shift they share), and each gateway's baseline median (whose
median and spread are the prior a new gateway of the cohort starts from). In a large
cohort both are computed once in a while rather than at every report (one gateway does
not move a large cohort's median). Both are rebuilt within one report interval after a
restart; until then a new gateway starts
from the metric's default prior and no shift is explained.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from edgeward.server.detection import metrics
from edgeward.server.detection.baseline import Prior, cohort_prior
from edgeward.server.detection.watch import MIN_COHORT, CohortNow


def cohort_of(model: str, apps: Iterable[str]) -> str:
    """``model/<hash of the app set>``: the same for gateways of one model and apps."""
    names = ",".join(sorted(set(apps)))
    return f"{model[:40]}/{hashlib.sha256(names.encode()).hexdigest()[:12]}"


EXACT_BELOW = 20  # gateways: a smaller cohort is judged exactly, without this gateway
LEVEL_FOR = 5.0  # seconds a large cohort's level stands (its median barely moves)
PRIOR_FOR = 60.0  # seconds a large cohort's prior stands


@dataclass
class _Cohort:
    now: CohortNow = field(default_factory=CohortNow)
    medians: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> gw -> median
    levels: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # (at, level)
    priors: dict[str, tuple[float, Prior]] = field(default_factory=dict)  # (monotonic, prior)


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
        """The cohort's level now, without this gateway; in a large cohort (where one
        gateway cannot move the median) computed once every ``LEVEL_FOR`` seconds."""
        with self._lock:
            found = self._get(cohort)
            if len(found.now.latest.get(key, {})) < EXACT_BELOW:
                return found.now.level(key, gateway, at)
            cached = found.levels.get(key)
            if cached is None or abs(at - cached[0]) > LEVEL_FOR:
                cached = found.levels[key] = (at, found.now.level(key, "", at))
            return cached[1]

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
            found = self._get(cohort)
            known = found.medians.get(key, {})
            cached = found.priors.get(key)
            if len(known) >= EXACT_BELOW and cached is not None and \
                    time.monotonic() - cached[0] < PRIOR_FOR:
                return cached[1]
            medians = [m for who, m in known.items()
                       if who != gateway or len(known) >= EXACT_BELOW]
        if len(medians) < MIN_COHORT:
            return spec.prior
        made = cohort_prior(medians, spec.prior.weight)
        # the cohort's spread of medians, but never tighter than the metric's default
        prior = Prior(made.median, max(made.mad, spec.prior.mad), made.weight)
        if len(medians) >= EXACT_BELOW:
            with self._lock:
                found.priors[key] = (time.monotonic(), prior)
        return prior

    def forget(self, gateway: str) -> None:
        with self._lock:
            for cohort in self._cohorts.values():
                for series in cohort.now.latest.values():
                    series.pop(gateway, None)
                for medians in cohort.medians.values():
                    medians.pop(gateway, None)
