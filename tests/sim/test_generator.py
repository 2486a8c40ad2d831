"""The simulated fleet's telemetry: a day has a shape, a seed fixes everything, and each
attack and confounder shows where and when it was injected, and not elsewhere."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Sequence

import pytest

from edgeward.errors import InputError
from edgeward.sim.episodes import (
    ATTACKS,
    BUSY_LOAD,
    UPDATE_CPU,
    WAVES,
    Episode,
    attacks,
    confounders,
)
from edgeward.sim.fleet import Gateway, build
from edgeward.sim.telemetry import Sample
from edgeward.sim.timeline import Span, Timeline

DAY0 = 1772409600.0  # midnight UTC
START = DAY0 + 10 * 3600.0


def fleet(seed: int = 3, count: int = 12) -> list[Gateway]:
    return build(count, seed, DAY0)


def series(gateway: Gateway, episodes: Sequence[Episode] = (), hours: float = 2.0,
           begin: float = START - 3600.0, interval: float = 30.0) -> list[Sample]:
    timeline = Timeline(Span(begin, interval, int(hours * 3600 / interval)), [gateway],
                        episodes)
    return [s for step in range(timeline.span.steps) for s in timeline.step(step)]


def in_cohort(gateways: list[Gateway], cohort: int) -> Gateway:
    return next(g for g in gateways if g.cohort == cohort)


def test_a_day_has_a_working_day_in_it() -> None:
    gateway = in_cohort(fleet(), 0)  # weather and a Modbus bridge: busy in working hours
    day = series(gateway, hours=24, begin=DAY0, interval=300)

    def mean_cpu(hours: range) -> float:
        return statistics.mean(s.values["app/modbus-bridge/cpu_percent"] for s in day
                               if int(gateway.local_hour(s.at)) in hours)

    assert mean_cpu(range(10, 16)) > 1.4 * mean_cpu(range(0, 5))
    assert all(0 < s.values["cpu_percent"] <= 100 and 0 < s.values["memory_percent"] < 100
               for s in day)


def test_the_same_seed_makes_the_same_fleet_and_another_seed_another() -> None:
    first, again, other = fleet(5), fleet(5), fleet(6)
    assert [s.values for s in series(first[0])] == [s.values for s in series(again[0])]
    assert [s.boot_id for s in series(first[1])] == [s.boot_id for s in series(again[1])]
    assert [s.values for s in series(first[0])] != [s.values for s in series(other[0])]


def test_a_miner_takes_the_cpu_and_calls_a_pool() -> None:
    gateway = in_cohort(fleet(), 1)
    app = gateway.kind.apps[0]
    miner = Episode("miner", gateway.index, START, START + 1800, app=app,
                    host="203.0.113.9", port=3333)
    samples = series(gateway, [miner])
    before = [s for s in samples if s.at < START]
    during = [s for s in samples if START <= s.at < START + 1800]
    assert all(s.values[f"app/{app}/cpu_percent"] < 60 for s in before)
    assert all(s.values[f"app/{app}/cpu_percent"] >= 88 for s in during)
    assert all(s.values["cpu_percent"] >= 88 for s in during)
    assert all(("203.0.113.9", 3333, "xmrig", app) in s.remotes for s in during)
    assert not any(host == "203.0.113.9" for s in before for host, *_ in s.remotes)
    pushed = [e for s in samples for e in s.events if e.kind == "remote"]
    assert len(pushed) == 1 and START <= pushed[0].at <= START + 2
    assert pushed[0].detail == {"host": "203.0.113.9", "port": 3333, "process": "xmrig"}


def test_a_backdoor_listens_from_its_start() -> None:
    gateway = fleet()[0]
    samples = series(gateway, [Episode("backdoor", gateway.index, START, START + 3600,
                                       port=4444)])
    assert not any(port == 4444 for s in samples if s.at < START for _, port, *_ in s.listening)
    assert all(("tcp", 4444, "dropbear", "") in s.listening for s in samples if s.at >= START)
    assert [e.detail["port"] for s in samples for e in s.events if e.kind == "listen"] == [4444]


def test_exfiltration_creeps_and_nothing_else_changes() -> None:
    app = in_cohort(fleet(), 0).kind.apps[1]
    exfil = Episode("exfil", in_cohort(fleet(), 0).index, START, START + 6 * 3600, app=app,
                    rate=0.05)
    clean = series(in_cohort(fleet(), 0), hours=6)
    crept = series(in_cohort(fleet(), 0), [exfil], hours=6)
    ratios = [b.values["net_tx_rate"] / a.values["net_tx_rate"]
              for a, b in zip(clean, crept, strict=True)]
    times = [s.at for s in clean]
    assert all(r == 1.0 for r, t in zip(ratios, times, strict=True) if t < START)
    after = {h: statistics.mean(r for r, t in zip(ratios, times, strict=True)
                                if START + h * 3600 <= t < START + (h + 0.5) * 3600)
             for h in (1, 4)}
    assert 1.0 < after[1] < after[4]
    assert [a.values["cpu_percent"] for a in clean] == [b.values["cpu_percent"] for b in crept]


def test_a_brute_force_is_a_burst_of_failed_logins() -> None:
    gateway = fleet()[2]
    attack = Episode("bruteforce", gateway.index, START, START + 600, host="203.0.113.7",
                     rate=2.0)
    samples = series(gateway, [attack])
    failed = sum(e.count for s in samples for e in s.events
                 if e.kind == "login" and START <= e.at <= START + 630)
    assert 0.7 * 1200 < failed < 1.3 * 1200
    assert sum(e.count for s in samples for e in s.events if e.kind == "login") - failed < 5


def test_a_clone_reports_alongside_the_genuine_gateway_with_its_own_boot_id() -> None:
    gateway = fleet()[3]
    samples = series(gateway, [Episode("clone", gateway.index, START, START + 600)])
    assert len({s.boot_id for s in samples if s.at < START}) == 1
    during = [s for s in samples if START <= s.at < START + 615]  # a twin's half interval
    assert len(during) == 2 * 20 and len({s.boot_id for s in during}) == 2
    assert all(a.boot_id != b.boot_id for a, b in itertools.pairwise(during))
    assert sum(s.twin for s in during) == 20
    assert not any(s.twin for s in samples if s.at < START or s.at >= START + 615)


def test_an_update_reboots_into_a_busier_release_for_ten_minutes() -> None:
    gateway = fleet()[4]
    normal = series(gateway)
    update = Episode("update", gateway.index, START, START + 7200, down=60.0,
                     cause="rollout")
    samples = series(fleet()[4], [update])
    assert not any(START <= s.at < START + 60 for s in samples)  # rebooting
    assert len({s.boot_id for s in samples if s.at < START}) == 1
    after = [s for s in samples if START + 120 <= s.at < START + 600]
    assert after and after[0].boot_id != samples[0].boot_id
    usual = statistics.mean(s.values["cpu_percent"] for s in normal if s.at < START)
    assert statistics.mean(s.values["cpu_percent"] for s in after) > usual + 0.8 * UPDATE_CPU


def test_a_busy_hour_doubles_the_load() -> None:
    gateway = in_cohort(fleet(), 1)
    app = gateway.kind.apps[0]
    busy = Episode("busy", gateway.index, START, START + 3600, rate=BUSY_LOAD,
                   cause="busy-hour")
    samples = series(gateway, [busy], begin=START - 1800, hours=1.5)
    before = statistics.mean(s.values[f"app/{app}/cpu_percent"] for s in samples
                             if s.at < START)
    during = statistics.mean(s.values[f"app/{app}/cpu_percent"] for s in samples
                             if s.at >= START)
    assert 1.7 < during / before < 2.4


def test_attacks_land_on_gateways_of_their_own_in_the_span_and_confounders_as_told() -> None:
    gateways = fleet(count=40)
    rng = random.Random(1)
    made = attacks(gateways, START, START + 6 * 3600, dict.fromkeys(ATTACKS, 2), rng)
    assert sorted(e.kind for e in made) == sorted(ATTACKS * 2)
    assert len({e.gateway for e in made}) == len(made)
    assert all(START < e.start < e.end <= START + 6 * 3600 for e in made)
    benign = confounders(gateways, START, START + 6 * 3600, ["rollout", "busy-hour"], rng)
    updates = [e for e in benign if e.kind == "update"]
    cohort = gateways[updates[0].gateway].cohort
    assert {e.gateway for e in updates} == {g.index for g in gateways if g.cohort == cohort}
    waves = sorted(e.start for e in updates)
    assert waves[-1] - waves[0] <= WAVES * 1200 and all(e.down > 0 for e in updates)
    assert len({e.start for e in benign if e.kind == "busy"}) == 1
    with pytest.raises(InputError, match="unknown attack"):
        attacks(gateways, START, START + 3600, {"ransom": 1}, rng)
    with pytest.raises(InputError, match="need as many gateways"):
        attacks(gateways[:3], START, START + 3600, {"miner": 4}, rng)
    with pytest.raises(InputError, match="unknown confounder"):
        confounders(gateways, START, START + 3600, ["eclipse"], rng)
