"""The simulated fleet, one report interval at a time: what every gateway (and every
clone's second device) sends in a step, in the order it sends it. The offline run feeds
each step to the detectors; the online sender posts it to a fleet server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgeward.sim.episodes import Episode
from edgeward.sim.fleet import Gateway
from edgeward.sim.telemetry import Sample, reading


@dataclass(frozen=True)
class Span:
    begin: float  # the first step's time (the warm-up's start)
    interval: float
    steps: int

    def time(self, step: int) -> float:
        return self.begin + step * self.interval


class Timeline:
    def __init__(self, span: Span, fleet: Sequence[Gateway], episodes: Sequence[Episode]
                 ) -> None:
        self.span = span
        self.fleet = sorted(fleet, key=lambda g: g.phase)  # in the order they report
        self.episodes: dict[int, list[Episode]] = {}
        for e in episodes:
            self.episodes.setdefault(e.gateway, []).append(e)
        self.twins = {e.gateway: (e, g.clone()) for g in self.fleet
                      for e in self.episodes.get(g.index, ()) if e.kind == "clone"}

    def step(self, step: int) -> list[Sample]:
        """The reports of step ``step``, gateway by gateway (one that reboots sends none;
        a clone's second device reports half an interval after the genuine one)."""
        interval = self.span.interval
        t = self.span.time(step)
        out: list[Sample] = []
        for g in self.fleet:
            at = t + g.phase * interval
            found = self.episodes.get(g.index)
            sample = reading(g, at, interval,
                             [e for e in found if e.start <= at < e.end] if found else [])
            if sample is not None:
                out.append(sample)
            twin = self.twins.get(g.index)
            if twin is not None and twin[0].start <= at < twin[0].end:
                second = reading(twin[1], at + interval / 2, interval, [])
                if second is not None:
                    out.append(second)
        return out

    def versions(self, gateway: Gateway, at: float) -> str:
        """The release a gateway runs at ``at``: a rollout's update moves it on."""
        updated = any(e.kind == "update" and e.start + e.down <= at
                      for e in self.episodes.get(gateway.index, ()))
        return "1.1.0" if updated else "1.0.0"
