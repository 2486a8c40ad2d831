"""The simulated gateways: who they are and what is normal for each.

A fleet of N gateways is split among the cohorts of :mod:`.catalogue` by their shares.
Each gateway has its own level (scale factors on every app's CPU, memory and traffic:
gateways of one model and apps still differ, by site and by what is plugged in), its
day shifted by up to half an hour from its cohort's, its own moment in the report
interval, and its own random stream seeded from (seed, index): a gateway's telemetry
is the same whichever other gateways are simulated with it, or in which process.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from edgeward.errors import InputError
from edgeward.sim.catalogue import APPS, COHORTS, FLEET_SERVER, SSH, AppKind, CohortKind

EXPOSED_SSH = 0.05  # share of gateways whose SSH port the internet's scanners reach
HOST_TTL = 3600.0  # seconds an app keeps one address of its cloud, on average


def day_factor(hour: float, app: AppKind) -> float:
    """An app's load at a local hour, relative to its mean: a sinusoid peaking at 15:00
    and a working-day bump (08:00 to 18:00, with hour-long ramps)."""
    bump = min(max(hour - 7.5, 0.0), 1.0) * min(max(18.5 - hour, 0.0), 1.0)
    return 1.0 + app.cycle * math.sin(2 * math.pi * (hour - 9.0) / 24.0) + app.busy * bump


@dataclass
class Gateway:
    index: int
    serial: str
    cohort: int  # index in COHORTS
    kind: CohortKind
    phase: float  # where in each interval it reports (0 to 1)
    shift: float  # hours its day is shifted from its cohort's
    system: float  # scale of the OS's CPU
    cpu: dict[str, float]  # per app: scale of its CPU
    memory: dict[str, float]
    net: dict[str, float]
    exposed: bool  # SSH reachable from the internet: failed logins now and then
    booted_at: float
    boot_id: str
    rng: random.Random = field(repr=False)
    hosts: dict[str, str] = field(default_factory=dict)  # app -> the cloud address now
    twin: bool = False  # a clone's second device
    apps: tuple[AppKind, ...] = ()

    def __post_init__(self) -> None:
        self.apps = tuple(APPS[name] for name in self.kind.apps)

    def boot(self, at: float) -> None:
        self.booted_at = at
        self.boot_id = self.rng.getrandbits(128).to_bytes(16, "big").hex()

    def local_hour(self, at: float) -> float:
        return (at / 3600.0 + self.kind.tz + self.shift) % 24.0

    def listening(self) -> list[tuple[str, int, str, str]]:
        """(proto, port, process, app) of what listens normally."""
        out = [(SSH[0], SSH[1], SSH[2], "")]
        for app in self.apps:
            out += [(proto, port, process, app.name) for proto, port, process in app.listens]
        return out

    def remotes(self, interval: float) -> list[tuple[str, int, str, str]]:
        """(host, port, process, app) of the connections it holds normally; each app's
        cloud address changes now and then (a DNS answer that rotates)."""
        out = [(FLEET_SERVER, 443, "edgeward-agent", "")]
        for app in self.apps:
            if self.rng.random() < interval / HOST_TTL:
                self.hosts[app.name] = self.rng.choice(app.hosts)
            out.append((self.hosts[app.name], app.port, app.proc, app.name))
        return out

    def clone(self) -> Gateway:
        """A second device holding this gateway's identity (same serial, same apps),
        booted separately and with a level of its own."""
        rng = random.Random(f"twin/{self.rng.random()}")  # noqa: S311 (a simulation)
        twin = _make(self.index, self.serial, self.cohort, rng, self.booted_at)
        twin.twin = True
        return twin


def cohort_sizes(count: int) -> list[int]:
    """Gateways per cohort: shares of ``count``, largest remainders first."""
    if count < 1:
        raise InputError("a fleet needs at least one gateway")
    exact = [kind.share * count for kind in COHORTS]
    sizes = [int(x) for x in exact]
    order = sorted(range(len(COHORTS)), key=lambda i: sizes[i] - exact[i])
    for i in order[:count - sum(sizes)]:
        sizes[i] += 1
    return sizes


def build(count: int, seed: int, start: float) -> list[Gateway]:
    """``count`` gateways, deterministic in ``seed``; booted days before ``start``."""
    fleet: list[Gateway] = []
    for cohort, size in enumerate(cohort_sizes(count)):
        for _ in range(size):
            index = len(fleet)
            rng = random.Random(f"{seed}/{index}")  # noqa: S311 (a simulation)
            uptime = rng.uniform(1, 30) * 86400
            fleet.append(_make(index, f"SIM-{index + 1:05d}", cohort, rng, start - uptime))
    return fleet


def _make(index: int, serial: str, cohort: int, rng: random.Random,
          booted_at: float) -> Gateway:
    kind = COHORTS[cohort]
    apps = [APPS[name] for name in kind.apps]
    gateway = Gateway(
        index, serial, cohort, kind, phase=rng.random(), shift=rng.uniform(-0.5, 0.5),
        system=rng.lognormvariate(0, 0.2),
        cpu={a.name: rng.lognormvariate(0, 0.35) for a in apps},
        memory={a.name: rng.lognormvariate(0, 0.15) for a in apps},
        net={a.name: rng.lognormvariate(0, 0.6) for a in apps},
        exposed=rng.random() < EXPOSED_SSH, booted_at=booted_at,
        boot_id="", rng=rng,
        hosts={a.name: rng.choice(a.hosts) for a in apps})
    gateway.boot(booted_at)  # a boot id from its own stream: deterministic
    return gateway
