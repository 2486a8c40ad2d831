"""A watched metric's judgement (seeded synthetic series): a miner is raised, a cohort
that moves together is one notice, a gateway that just changed release learns its new
level, a creep relative to the cohort is a drift; rare endpoints and operators' rules."""

from __future__ import annotations

import random

import pytest

from edgeward.errors import InputError
from edgeward.server.detection.rarity import new_and_rare
from edgeward.server.detection.rules import Rule, RuleClock
from edgeward.server.detection.watch import CohortNow, MetricWatch


def settle(watch: MetricWatch, rng: random.Random, centre: float, n: int = 300,
           cohort: float | None = None, sigma: float = 2.0) -> list[str]:
    kinds = []
    for _ in range(n):
        kinds += [s.kind for s in watch.observe(max(0.0, rng.gauss(centre, sigma)), cohort)]
    return kinds


def test_a_miner_is_raised_on_the_second_sample_and_recovers() -> None:
    rng = random.Random(1)
    watch = MetricWatch.new("app/weather/cpu_percent")
    assert settle(watch, rng, 10) == []
    first, second = watch.observe(91.0), watch.observe(93.0)
    assert first == [] and [s.kind for s in second] == ["anomaly"]
    assert second[0].severity == "high" and second[0].app == "weather"
    assert "CPU of app weather at 93" in second[0].describe()
    assert "recovered" in settle(watch, rng, 10, n=5)


def test_a_cohort_moving_together_is_a_notice_until_one_gateway_parts_from_it() -> None:
    rng = random.Random(2)
    watch = MetricWatch.new("cpu_percent")
    settle(watch, rng, 10, cohort=10)
    busy = settle(watch, rng, 45, n=20, cohort=45)  # the busy hour: everyone at 45
    assert "anomaly" not in busy and busy.count("cohort-shift") == 1
    mined = [s.kind for s in watch.observe(95.0, 45.0)]  # a miner during the busy hour
    assert mined == ["anomaly"]


def test_after_a_release_change_the_new_level_is_learnt_not_raised() -> None:
    rng = random.Random(3)
    watch = MetricWatch.new("cpu_percent")
    settle(watch, rng, 10)
    kinds = [s.kind for x in (30.0, 31.0, 29.0) for s in watch.observe(x, fresh=True)]
    assert kinds == ["after-change"]
    later = settle(watch, rng, 30, n=200)
    assert "anomaly" not in later and not watch.baseline.anomalous
    assert 25 < watch.baseline.centre()[0] < 35


def test_egress_creeping_away_from_the_cohort_is_a_drift_and_a_shared_cycle_is_not() -> None:
    rng = random.Random(4)
    creeping, cycling = MetricWatch.new("net_tx_rate"), MetricWatch.new("net_tx_rate")
    creep, cycle = [], []
    for i in range(720):  # six hours at 30 s
        level = 5000 * (1 + i / 240)  # the cohort's own daily rise: x4 over six hours
        noise = rng.lognormvariate(0, 0.1)
        creep += [s.kind for s in creeping.observe(5000 * (1 + i / 60) * noise, 5000)]
        cycle += [s.kind for s in cycling.observe(level * noise, level)]
    assert "drift" in creep or "anomaly" in creep
    assert "drift" not in cycle and "anomaly" not in cycle


def test_state_round_trips_and_malformed_state_is_refused() -> None:
    rng = random.Random(5)
    watch = MetricWatch.new("net_tx_rate")
    settle(watch, rng, 3000, sigma=300)
    again = MetricWatch.from_dict("net_tx_rate", watch.to_dict())
    assert again.baseline.samples == watch.baseline.samples
    assert again.baseline.centre() == pytest.approx(watch.baseline.centre(), rel=1e-3)
    assert again.drift == watch.drift
    with pytest.raises(InputError):
        MetricWatch.from_dict("net_tx_rate", {"baseline": {"samples": "x"}})
    with pytest.raises(InputError, match="not watched"):
        MetricWatch.new("app/x/uptime")


def test_cohort_level_needs_enough_recent_others() -> None:
    cohort = CohortNow(horizon=60)
    for n, value in enumerate((10.0, 12.0, 50.0)):
        cohort.record(f"g{n}", 1000.0, {"cpu_percent": value})
    assert cohort.level("cpu_percent", "g0", 1010.0) is None  # two others only
    cohort.record("g3", 1000.0, {"cpu_percent": 14.0})
    assert cohort.level("cpu_percent", "g0", 1010.0) == 14.0
    assert cohort.level("cpu_percent", "g0", 1100.0) is None  # all too old
    assert cohort.reporting(1010.0) == 4


def test_a_rare_new_endpoint_is_flagged_and_a_common_or_known_one_is_not() -> None:
    seen = {"fleet.example:443": 99, "pool.miner:3333": 0}
    values = ["fleet.example:443", "pool.miner:3333", "known:1"]
    assert new_and_rare(values, {"known:1"}, seen, 100, learning=False) == ["pool.miner:3333"]
    assert new_and_rare(values, set(), seen, 3, learning=True) == []  # too few to say
    assert new_and_rare(values, set(), seen, 100, learning=True) == ["known:1",
                                                                     "pool.miner:3333"]


def test_a_rule_fires_once_after_its_duration_and_rearms() -> None:
    rule = Rule("hot", "cpu_percent", "", ">", 80.0, 60.0)
    clock = RuleClock()
    fired = [clock.observe(rule, v, t) for t, v in
             [(0, 90), (30, 95), (60, 92), (90, 99), (120, 10), (150, 90), (210, 91)]]
    assert fired == [False, False, True, False, False, False, True]
    assert RuleClock.from_dict(clock.to_dict()) == clock
    assert rule.describe() == "cpu_percent > 80 for 60 s"
    with pytest.raises(InputError):
        Rule("bad", "cpu_percent", "", "=~", 1.0, 10.0)
