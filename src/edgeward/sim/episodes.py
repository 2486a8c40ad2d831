"""What happens to the fleet besides its normal day: attacks and benign confounders.

Attacks (the ground truth the detectors are scored against), one per chosen gateway:

- ``miner``: one app's CPU, and with it the host's, jumps to 90-100% and the app holds a
  connection to a mining pool (a new host, port 3333);
- ``beacon``: a dropped program calls a new host every few minutes with a few hundred
  bytes (its connection is listed in the report after each call);
- ``backdoor``: a new listening port, owned by a process of no app;
- ``bruteforce``: failed logins from one address, one to three a second;
- ``exfil``: an app sends a few percent more every 10 minutes, for hours, to its usual
  cloud (no new host: the channel is one the fleet already uses);
- ``clone``: a second device reports with the gateway's identity (its own boot id,
  its own reports, interleaved with the genuine ones).

Confounders, which must not be alerts: a ``rollout`` (one cohort updates in four waves
20 minutes apart: each gateway reboots into the new release, its CPU 30 points higher
for 10 minutes, its apps 5% costlier for good), a ``reboot-storm`` (a quarter of the
fleet reboots within 5 minutes, as after a power cut: a CPU spike at boot, memory
refilling over the next half hour) and a ``busy-hour`` (one cohort's load doubles for an
hour, everywhere at once).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgeward.errors import InputError
from edgeward.sim.fleet import Gateway

ATTACKS = ("miner", "beacon", "backdoor", "bruteforce", "exfil", "clone")
CONFOUNDERS = ("rollout", "reboot-storm", "busy-hour")
LEAD = 600.0  # no attack in the first 10 minutes of the scored span
SPAN = {"exfil": 7200.0}  # the least of the scored span an attack should have left
BACKDOOR_PORTS = (4444, 31337, 2222, 5555, 8081, 1337)
WAVES, WAVE_GAP, SPREAD = 4, 1200.0, 600.0  # a rollout's waves, and each wave's spread
STORM_SHARE, STORM_SPREAD = 0.25, 300.0
UPDATE_CPU, UPDATE_FOR, RELEASE_COST = 30.0, 600.0, 1.05
BUSY_FOR, BUSY_LOAD = 3600.0, 2.0


@dataclass(frozen=True)
class Episode:
    kind: str  # an attack, or "update" (a rollout's), "reboot" (a storm's), "busy"
    gateway: int  # index in the fleet
    start: float
    end: float
    app: str = ""  # the app it works through
    host: str = ""  # the remote host it talks to
    port: int = 0  # the port it talks to or listens on
    rate: float = 0.0  # bruteforce: failures a second; exfil: growth per 10 minutes;
    #                    beacon: seconds between calls; busy: load factor
    down: float = 0.0  # update, reboot: seconds offline before the new boot
    cause: str = ""  # the confounder it belongs to

    @property
    def attack(self) -> bool:
        return self.kind in ATTACKS


def _start(rng: random.Random, start: float, end: float, span: float) -> float:
    latest = max(start + LEAD, end - span)
    return rng.uniform(start + LEAD, latest)


def attacks(fleet: Sequence[Gateway], start: float, end: float, counts: Mapping[str, int],
            rng: random.Random) -> list[Episode]:
    """``counts[kind]`` attacks of each kind, each on its own gateway, at random times
    in the scored span ``[start, end)``."""
    unknown = sorted(set(counts) - set(ATTACKS))
    if unknown:
        raise InputError(f"unknown attack {', '.join(unknown)}: one of {', '.join(ATTACKS)}")
    total = sum(counts.values())
    if total > len(fleet):
        raise InputError(f"{total} attacks need as many gateways; the fleet has {len(fleet)}")
    chosen = iter(rng.sample(range(len(fleet)), total))
    out: list[Episode] = []
    for kind in ATTACKS:
        for n in range(counts.get(kind, 0)):
            gateway = fleet[next(chosen)]
            at = _start(rng, start, end, SPAN.get(kind, 900.0))
            app = rng.choice(gateway.kind.apps)
            out.append(_attack(kind, gateway, at, end, app, n, rng))
    return out


def _attack(kind: str, gateway: Gateway, at: float, end: float, app: str, n: int,
            rng: random.Random) -> Episode:
    host = f"203.0.113.{(17 * n + 101 * ATTACKS.index(kind)) % 250 + 2}"
    if kind == "miner":
        return Episode(kind, gateway.index, at, min(end, at + rng.uniform(3600, 4 * 3600)),
                       app=app, host=host, port=3333)
    if kind == "beacon":
        return Episode(kind, gateway.index, at, end, host=host, port=443,
                       rate=rng.uniform(120, 600))
    if kind == "backdoor":
        return Episode(kind, gateway.index, at, end, port=rng.choice(BACKDOOR_PORTS))
    if kind == "bruteforce":
        return Episode(kind, gateway.index, at, min(end, at + rng.uniform(600, 1800)),
                       host=host, rate=rng.uniform(0.5, 3.0))
    if kind == "exfil":
        return Episode(kind, gateway.index, at, end, app=app, host=gateway.hosts[app],
                       rate=rng.uniform(0.02, 0.05))
    return Episode(kind, gateway.index, at, end)  # clone


def confounders(fleet: Sequence[Gateway], start: float, end: float, kinds: Sequence[str],
                rng: random.Random) -> list[Episode]:
    unknown = sorted(set(kinds) - set(CONFOUNDERS))
    if unknown:
        raise InputError(f"unknown confounder {', '.join(unknown)}: one of "
                         f"{', '.join(CONFOUNDERS)}")
    cohorts = sorted({g.cohort for g in fleet})
    out: list[Episode] = []
    for kind in dict.fromkeys(kinds):
        if kind == "rollout":
            cohort = rng.choice(cohorts)
            first = _start(rng, start, end, WAVES * WAVE_GAP + 1800)
            for g in (g for g in fleet if g.cohort == cohort):
                at = first + rng.randrange(WAVES) * WAVE_GAP + rng.uniform(0, SPREAD)
                out.append(Episode("update", g.index, at, end, down=rng.uniform(40, 80),
                                   cause=kind))
        elif kind == "reboot-storm":
            at = _start(rng, start, end, 3600)
            for g in rng.sample(list(fleet), max(1, round(STORM_SHARE * len(fleet)))):
                when = at + rng.uniform(0, STORM_SPREAD)
                out.append(Episode("reboot", g.index, when, min(end, when + 1800),
                                   down=rng.uniform(30, 80), cause=kind))
        else:  # busy-hour
            cohort = rng.choice(cohorts)
            at = _start(rng, start, end, BUSY_FOR + 600)
            out += [Episode("busy", g.index, at, min(end, at + BUSY_FOR), rate=BUSY_LOAD,
                            cause=kind) for g in fleet if g.cohort == cohort]
    return out
