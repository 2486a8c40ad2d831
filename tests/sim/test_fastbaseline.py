"""The sim's sorted-window baseline gives the server's verdicts exactly, sample for sample,
through anomalies opening and closing, boots, cohort shifts and a prior that moves."""

from __future__ import annotations

import random

from edgeward.server.detection.baseline import Prior
from edgeward.server.detection.watch import MetricWatch
from edgeward.sim.fastbaseline import FastBaseline, fast_watch

KEYS = ("cpu_percent", "net_tx_rate", "app/weather/memory_bytes")


def test_the_same_signals_and_the_same_centre_at_every_sample() -> None:
    rng = random.Random(8)
    reference = [MetricWatch.new(key) for key in KEYS]
    fast = [fast_watch(key) for key in KEYS]
    assert all(isinstance(w.baseline, FastBaseline) for w in fast)
    kinds: set[str] = set()
    for i in range(6000):
        level = 10 + 5 * ((i // 700) % 2)
        spike = 2000 < i < 2100 or 4000 < i < 4004 or i % 997 < 3
        cpu = rng.gauss(90, 3) if spike else rng.gauss(level, 2)
        row = (cpu, cpu * 300 * rng.lognormvariate(0, 0.5),
               5e7 * rng.lognormvariate(0, 0.1) * (6 if 3000 < i < 3050 else 1))
        cohort = None if i % 3 else cpu
        fresh = i % 500 < 5
        if i == 3500:  # the cohort's prior moves
            for watch in (*reference, *fast):
                watch.baseline.prior = Prior(20.0, 4.0)
        for ref, mine, value in zip(reference, fast, row, strict=True):
            expected = ref.observe(value, cohort, fresh)
            assert mine.observe(value, cohort, fresh) == expected, i
            assert mine.baseline.centre() == ref.baseline.centre()
            kinds.update(s.kind for s in expected)
    assert {"anomaly", "recovered", "after-change", "cohort-shift"} <= kinds
    assert [list(w.baseline.samples) for w in fast] == \
        [list(w.baseline.samples) for w in reference]
    assert all(w.baseline.ordered == sorted(w.baseline.samples) for w in fast)  # type: ignore[attr-defined]
