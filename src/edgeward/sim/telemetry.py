"""One gateway's report at one moment: its metrics, endpoints and security events.

Normal telemetry: each app's CPU follows its day (:func:`.fleet.day_factor`) times the
gateway's own scale, with 10% noise; the host's CPU is the OS's plus its apps'; memory
refills over the half hour after a boot and saws with each app's garbage collection;
traffic is heavy-tailed (log-normal, and one sample in a hundred a burst of Pareto
size: a sync, a retry storm). Failed logins: now and then (a typo, a few a week), and
every ten minutes or so on a gateway whose SSH the internet's scanners reach.

The episodes active at that moment change it (see :mod:`.episodes`). A gateway that is
rebooting sends nothing; the first report after it carries a new boot id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeward.sim.episodes import RELEASE_COST, UPDATE_CPU, UPDATE_FOR, Episode
from edgeward.sim.fleet import Gateway, day_factor

MB = 1 << 20
AGENT_TX, AGENT_RX = 250.0, 120.0  # the agent's own telemetry, logs and check-ins
REFILL = 1200.0  # seconds for memory to refill after a boot (time constant)
BURST = 0.01  # chance of a traffic burst in a sample
LOGINS_EXPOSED, LOGINS_QUIET = 600.0, 3 * 86400.0  # seconds between failed logins
BEACON_BYTES = 400.0
ANY = "0.0.0.0"  # noqa: S104 (an address a port is reported on, not a bind)
SCAN = 2.0  # seconds between the agent's scans of sockets
SUBSLOTS = 6  # an attack's failed logins are pushed per sixth of the interval, counted


@dataclass(frozen=True)
class Event:
    """A security event, pushed at once by the agent (``count`` aggregates a burst)."""

    at: float
    kind: str
    what: str
    count: int = 1
    app: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    serial: str
    at: float
    boot_id: str
    values: dict[str, float]  # by metric key: the gateway's and "app/<name>/<metric>"
    listening: list[tuple[str, int, str, str]]  # (proto, port, process, app)
    remotes: list[tuple[str, int, str, str]]  # (host, port, process, app)
    events: list[Event]
    twin: bool = False  # sent by a clone's second device


def poisson(rng: Any, mean: float) -> int:
    """A Poisson variate (Knuth's method: the means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def reading(gateway: Gateway, at: float, interval: float, active: Sequence[Episode]
            ) -> Sample | None:
    """The report ``gateway`` sends at ``at`` (None while it reboots)."""
    rng = gateway.rng
    load = release = rx_boost = 1.0
    cpu_extra = 0.0
    for e in active:
        if e.kind in ("update", "reboot"):
            boot = e.start + e.down
            if at < boot:
                return None
            if gateway.booted_at < boot:
                gateway.boot(boot)
            if e.kind == "update":
                release *= RELEASE_COST
                if at - boot < UPDATE_FOR:
                    cpu_extra += UPDATE_CPU
        elif e.kind == "busy":
            load *= e.rate
    uptime = at - gateway.booted_at
    if uptime < 60:  # services starting
        cpu_extra += rng.uniform(30, 60)
    if uptime < 90:  # catching up with the cloud
        rx_boost *= 4.0
    refill = 0.65 + 0.35 * (1.0 - math.exp(-uptime / REFILL))
    hour = gateway.local_hour(at)
    values: dict[str, float] = {}
    cpu_total = gateway.kind.system_cpu * gateway.system * (1 + 0.15 * rng.gauss(0, 1))
    memory_mb = gateway.kind.system_mb * refill
    tx, rx = AGENT_TX, AGENT_RX
    miner = next((e for e in active if e.kind == "miner"), None)
    for app in gateway.apps:
        name = app.name
        factor = day_factor(hour, app) * load
        cpu = max(0.05, app.cpu * gateway.cpu[name] * factor * release
                  * (1 + 0.1 * rng.gauss(0, 1)))
        mb = app.memory_mb * gateway.memory[name] * refill * (
            1 + 0.03 * ((at / 1200.0 + gateway.phase) % 1.0)) * (1 + 0.01 * rng.gauss(0, 1))
        app_tx = app.tx * gateway.net[name] * factor
        if miner is not None and miner.app == name:
            cpu, mb = rng.uniform(88, 97), mb + 25
        for e in active:
            if e.kind == "exfil" and e.app == name:
                app_tx *= (1 + e.rate) ** ((at - e.start) / 600.0)
        values[f"app/{name}/cpu_percent"] = cpu
        values[f"app/{name}/memory_bytes"] = mb * MB
        cpu_total += cpu
        memory_mb += mb
        tx += app_tx
        rx += app.rx * gateway.net[name] * factor
    listening = gateway.listening()
    remotes = gateway.remotes(interval)
    events: list[Event] = []
    for e in active:
        _attack(e, gateway, at, interval, listening, remotes, events)
        if e.kind == "beacon":
            tx += BEACON_BYTES / e.rate
    mean = interval / (LOGINS_EXPOSED if gateway.exposed else LOGINS_QUIET)
    if rng.random() < mean:
        events.append(Event(at - rng.uniform(0, interval), "login",
                            "failed password for admin", 1, detail={"outcome": "failed"}))
    values["cpu_percent"] = min(100.0, max(0.5, cpu_total + cpu_extra))
    values["memory_percent"] = min(100.0, memory_mb / gateway.kind.ram_mb * 100
                                   + 0.3 * rng.gauss(0, 1))
    values["net_tx_rate"] = tx * traffic_noise(rng)
    values["net_rx_rate"] = rx * rx_boost * traffic_noise(rng)
    if len(events) > 1:
        events.sort(key=lambda ev: ev.at)
    return Sample(gateway.serial, at, gateway.boot_id, values, listening, remotes, events,
                  gateway.twin)


def traffic_noise(rng: Any) -> float:
    """Traffic's multiplicative noise: log-normal, now and then a Pareto burst."""
    noise = math.exp(0.25 * rng.gauss(0, 1))
    return noise * float(rng.paretovariate(1.5)) if rng.random() < BURST else noise


def expected_tx(gateway: Gateway, at: float) -> float:
    """What a gateway sends a second at ``at`` on a normal day, before noise."""
    hour = gateway.local_hour(at)
    return AGENT_TX + sum(app.tx * gateway.net[app.name] * day_factor(hour, app)
                          for app in gateway.apps)


def _attack(e: Episode, gateway: Gateway, at: float, interval: float,
            listening: list[tuple[str, int, str, str]],
            remotes: list[tuple[str, int, str, str]], events: list[Event]) -> None:
    began = at - interval < e.start <= at  # since the last report: the agent's scan
    #                                         (every SCAN s) pushes a new endpoint at once
    if e.kind == "miner":
        remotes.append((e.host, e.port, "xmrig", e.app))
        if began:
            events.append(_endpoint(gateway, e.start, "remote", e.app, host=e.host,
                                    port=e.port, process="xmrig"))
    elif e.kind == "backdoor":
        listening.append(("tcp", e.port, "dropbear", ""))
        if began:
            events.append(_endpoint(gateway, e.start, "listen", "", proto="tcp",
                                    address=ANY, port=e.port, process="dropbear"))
    elif e.kind == "beacon":
        calls_now = math.floor((at - e.start) / e.rate)
        calls_before = math.floor((at - interval - e.start) / e.rate)
        if calls_now > calls_before:  # a call since the last report
            remotes.append((e.host, e.port, "sysupd", ""))
        if began:
            events.append(_endpoint(gateway, e.start, "remote", "", host=e.host,
                                    port=e.port, process="sysupd"))
    elif e.kind == "bruteforce":
        slot = interval / SUBSLOTS
        for i in range(SUBSLOTS):
            end = at - interval + (i + 1) * slot
            if e.start <= end < e.end + slot:
                count = poisson(gateway.rng, e.rate * slot)
                if count:
                    events.append(Event(end, "login", f"failed password for root from "
                                        f"{e.host}", count,
                                        detail={"outcome": "failed", "from": e.host}))


def _endpoint(gateway: Gateway, since: float, kind: str, app: str, **detail: Any) -> Event:
    what = (f"new listening port {detail['proto']}/{detail['port']}" if kind == "listen"
            else f"new remote host {detail['host']}:{detail['port']}")
    return Event(since + gateway.rng.uniform(0, SCAN), kind, what, 1, app, detail)
