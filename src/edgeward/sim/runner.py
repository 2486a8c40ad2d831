"""The offline run: a simulated fleet, its attacks and confounders, through the server's
detectors and the anchor-like one, report by report.

Time advances one report interval a step; within a step each gateway reports at its
own moment. A run begins ``warmup`` seconds before the scored span, from a cold start
(no history: the server meets the fleet then), so that the scored day is judged by
detectors that have seen an hour of the fleet; what they raise in the warm-up is
counted apart. Cohorts share nothing (a cohort's level, prior and endpoints are its
own), so each is simulated on its own, in a pool of processes when ``workers`` > 1;
every gateway draws from its own seeded stream, so the outcome does not depend on it.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeward.errors import InputError
from edgeward.sim.anchor import AnchorGateway, Profile, audits, calibrate
from edgeward.sim.catalogue import COHORTS
from edgeward.sim.detectors import Alert, CohortDetectors
from edgeward.sim.episodes import Episode, attacks, confounders
from edgeward.sim.fleet import Gateway, build
from edgeward.sim.timeline import Span, Timeline

DAY0 = 1772409600.0  # 2026-03-02T00:00:00Z, a Monday
WARM_STEPS = 40  # steps in which the cohort's prior is recomputed every step
TICK = 20  # steps between two progress reports of a worker

Progress = Callable[[int, int], None]  # (reports done, reports in all)


@dataclass(frozen=True)
class Scenario:
    gateways: int = 100
    hours: float = 24.0
    interval: float = 30.0
    seed: int = 1
    warmup: float = 3600.0  # seconds before the scored span
    attacks: tuple[tuple[str, int], ...] = ()  # (kind, instances)
    confounders: tuple[str, ...] = ()
    start: float = DAY0  # the scored span's start

    def __post_init__(self) -> None:
        if not (1 <= self.gateways <= 100_000 and 0 < self.hours <= 24 * 14
                and 1 <= self.interval <= 3600 and 0 <= self.warmup <= 86400):
            raise InputError("scenario: 1..100000 gateways, 0..336 hours, an interval of "
                             "1..3600 s and a warm-up of 0..86400 s")

    @property
    def end(self) -> float:
        return self.start + self.hours * 3600.0

    @property
    def begin(self) -> float:
        return self.start - self.warmup

    @property
    def steps(self) -> int:
        return math.ceil((self.end - self.begin) / self.interval)


@dataclass
class CohortOutcome:
    cohort: int
    alerts: list[Alert] = field(default_factory=list)
    notices: list[Alert] = field(default_factory=list)
    after_change: int = 0
    anchor: list[Alert] = field(default_factory=list)
    reports: int = 0


@dataclass
class Outcome:
    scenario: Scenario
    serials: list[str]
    episodes: list[Episode]
    cohorts: list[CohortOutcome]
    wall_s: float

    @property
    def alerts(self) -> list[Alert]:
        return [a for c in self.cohorts for a in c.alerts]

    @property
    def anchor(self) -> list[Alert]:
        return [a for c in self.cohorts for a in c.anchor]


def plan(scenario: Scenario, fleet: Sequence[Gateway]) -> list[Episode]:
    rng = random.Random(f"{scenario.seed}/plan")  # noqa: S311 (a simulation)
    made = attacks(fleet, scenario.start, scenario.end, dict(scenario.attacks), rng)
    return made + confounders(fleet, scenario.start, scenario.end, scenario.confounders, rng)


def run(scenario: Scenario, workers: int = 1, progress: Progress | None = None) -> Outcome:
    began = time.perf_counter()
    fleet = build(scenario.gateways, scenario.seed, scenario.begin)
    episodes = plan(scenario, fleet)
    profiles = calibrate(scenario.seed, scenario.interval)
    cohorts = sorted({g.cohort for g in fleet}, key=lambda c: -sum(g.cohort == c for g in fleet))
    members = {g.index: g.cohort for g in fleet}
    tasks = [(scenario, c, [e for e in episodes if members[e.gateway] == c], profiles[c])
             for c in cohorts]
    total = scenario.gateways * scenario.steps
    if workers <= 1 or len(tasks) == 1:
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], total)

        results = [simulate(*task, tick=tick) for task in tasks]
    else:
        results = _pool(tasks, min(workers, len(tasks)), total, progress)
    return Outcome(scenario, [g.serial for g in fleet], episodes,
                   sorted(results, key=lambda r: r.cohort), time.perf_counter() - began)


# --- one cohort ---------------------------------------------------------------------------
def simulate(scenario: Scenario, cohort: int, episodes: Sequence[Episode], profile: Profile,
             tick: Callable[[int], None] | None = None) -> CohortOutcome:
    fleet = [g for g in build(scenario.gateways, scenario.seed, scenario.begin)
             if g.cohort == cohort]
    timeline = Timeline(span(scenario), fleet, episodes)
    detectors = CohortDetectors(COHORTS[cohort].name)
    anchors = {g.serial: AnchorGateway(g.serial, profile) for g in fleet}
    out = CohortOutcome(cohort)
    pending_audits = audits(scenario.begin, scenario.end)
    for step in range(scenario.steps):
        t = timeline.span.time(step)
        detectors.levels.expire(t)
        detectors.refresh(t, warming=step < WARM_STEPS)
        while pending_audits and pending_audits[0] <= t:
            _audit(anchors.values(), pending_audits.pop(0), out.anchor)
        for sample in timeline.step(step):
            detectors.observe(sample)
            anchors[sample.serial].add(sample, scenario.interval, out.anchor)
            out.reports += 1
        if tick is not None and (step % TICK == TICK - 1 or step == scenario.steps - 1):
            tick(len(fleet) * (step % TICK + 1))
    for when in pending_audits:
        _audit(anchors.values(), when, out.anchor)
    out.alerts, out.notices = detectors.alerts, detectors.notices
    out.after_change = detectors.after_change
    return out


def span(scenario: Scenario) -> Span:
    return Span(scenario.begin, scenario.interval, scenario.steps)


def _audit(anchors: Any, at: float, alerts: list[Alert]) -> None:
    for anchor in anchors:
        anchor.audit(at, alerts)


# --- a pool of processes ------------------------------------------------------------------
_counter: Any = None


def _init(counter: Any) -> None:
    global _counter
    _counter = counter


def _tick(n: int) -> None:
    with _counter.get_lock():
        _counter.value += n


def _task(task: tuple[Scenario, int, list[Episode], Profile]) -> CohortOutcome:
    return simulate(*task, tick=_tick)


def _pool(tasks: list[tuple[Scenario, int, list[Episode], Profile]], workers: int,
          total: int, progress: Progress | None) -> list[CohortOutcome]:
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    with context.Pool(workers, initializer=_init, initargs=(counter,)) as pool:
        pending = pool.map_async(_task, tasks, chunksize=1)
        while not pending.ready():
            pending.wait(0.5)
            if progress is not None:
                progress(int(counter.value), total)
        return pending.get()
