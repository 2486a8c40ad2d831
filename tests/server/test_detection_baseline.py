"""The robust baseline and the drift test, on synthetic series with a seeded generator:
a CPU that jumps from 10% to 90% is flagged within two samples and the baseline does
not learn it; noise, a lone spike and a flat metric raise nothing; a new gateway is
judged from its first sample by its cohort's prior; a slow creep the z-score misses is
caught as a drift."""

from __future__ import annotations

import random

import pytest

from edgeward.errors import InputError
from edgeward.server.detection.baseline import Baseline, Prior, Settings, cohort_prior
from edgeward.server.detection.drift import Drift

QUIET = Prior(median=10.0, mad=2.0)


def noisy(rng: random.Random, centre: float, n: int, sigma: float = 2.0) -> list[float]:
    return [max(0.0, rng.gauss(centre, sigma)) for _ in range(n)]


def test_a_jump_from_10_to_90_percent_opens_at_once_and_closes_when_it_ends() -> None:
    rng = random.Random(1)
    base = Baseline(QUIET)
    assert not any(base.observe(x).anomalous for x in noisy(rng, 10, 500))
    verdicts = [base.observe(x) for x in noisy(rng, 90, 20)]
    assert [v.change for v in verdicts[:2]] == [None, "opened"]  # the second sample
    assert all(v.anomalous for v in verdicts[1:])
    assert 8 < base.centre()[0] < 12  # the miner was not learnt as normal
    back = [base.observe(x) for x in noisy(rng, 10, 10)]
    assert [v.change for v in back].count("closed") == 1
    assert back[2].change == "closed" and not back[-1].anomalous


def test_noise_a_lone_spike_and_a_flat_metric_raise_nothing() -> None:
    rng = random.Random(2)
    base = Baseline(QUIET)
    series = noisy(rng, 10, 2000)
    series[700] = 95.0  # one sample: a cron job, not a miner
    assert not [v for v in map(base.observe, series) if v.change]
    flat = Baseline(Prior(0.0, 0.0))
    assert not [v for v in (flat.observe(0.0 if i % 7 else 0.5) for i in range(500))
                if v.change]  # MAD 0 is floored: no division, no alarm on a wiggle


def test_a_new_gateway_is_judged_from_its_first_sample_by_its_cohort() -> None:
    prior = cohort_prior([9.5, 10.0, 11.0, 10.2, 9.8, 12.0])
    assert 9.9 < prior.median < 10.2
    base = Baseline(prior)
    assert [base.observe(x).change for x in (88.0, 91.0)] == [None, "opened"]
    lazy = Baseline(Prior(40.0, 5.0))  # a cohort that runs hotter: 45% is ordinary there
    assert not any(lazy.observe(x).anomalous for x in (45.0, 43.0, 47.0, 44.0))


def test_its_own_history_takes_over_from_the_prior() -> None:
    rng = random.Random(3)
    base = Baseline(Prior(10.0, 2.0, weight=30))
    changes = [c for c in (base.observe(x).change  # this gateway runs at 50%: its normal
                           for x in noisy(rng, 50, 400, sigma=3.0)) if c]
    assert changes == ["opened", "closed"]  # rare in its cohort at first, then its own
    assert 45 < base.centre()[0] < 52
    assert not base.observe(52.0).anomalous
    assert [base.observe(x).change for x in (95.0, 96.0)] == [None, "opened"]


def test_the_state_survives_a_round_trip_and_malformed_state_is_refused() -> None:
    rng = random.Random(4)
    base = Baseline(QUIET, Settings(window=50))
    for x in noisy(rng, 10, 80):
        base.observe(x)
    base.observe(90.0)  # a streak under way
    again = Baseline.from_dict(base.to_dict(), QUIET, Settings(window=50))
    assert len(again.samples) == 50 and again.streak == 1
    assert again.observe(91.0).change == base.observe(91.0).change == "opened"
    with pytest.raises(InputError):
        Baseline.from_dict({"samples": "x"}, QUIET)
    with pytest.raises(InputError):
        Settings(enter_z=2.0, exit_z=3.0)


def test_a_slow_creep_is_a_drift_the_z_score_does_not_see() -> None:
    rng = random.Random(5)
    base, drift = Baseline(Prior(100.0, 10.0)), Drift(delta=2.0, threshold=200.0)
    quiet = noisy(rng, 100, 300, sigma=10.0)
    assert not any(map(drift.observe, quiet))
    creep = [x + 0.5 * i for i, x in enumerate(noisy(rng, 100, 300, sigma=10.0))]
    z_flags = [base.observe(x).change for x in creep]
    fired = [i for i, x in enumerate(creep) if drift.observe(x)]
    assert fired and fired[0] < 150  # caught while the creep is still small
    assert "opened" not in z_flags[:fired[0] + 1]  # the z-score had not seen it yet
    again = Drift.from_dict(drift.to_dict())
    assert again == drift
