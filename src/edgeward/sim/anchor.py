"""An anchor-like detector: fixed thresholds over 5-minute windows, as the cloud IoT
security services offer without weeks of history (AWS IoT Device Defender's Rules
Detect and its daily audit; Azure's Defender for IoT micro agent is alike).

What it is given, and why that is fair (each choice is the anchor's best case):

- a security profile per cohort (the services attach profiles to thing groups), its
  thresholds set by an operator who knows the fleet: bytes out over a window above
  ``TX_MARGIN`` times the 99th percentile of the cohort's normal 5-minute windows
  (``aws:all-bytes-out``, durations 300 s and up), CPU averaged over the window above
  80% (a custom metric: the device-side metrics have no CPU), failed logins in a window
  above 10 (a custom metric);
- allow-lists that hold every address and port the fleet uses normally
  (``aws:destination-ips`` in-cidr-set, ``aws:listening-tcp-ports`` in-port-set): no
  false alarm from a rotating cloud address, and what connects in a window counts even
  if it is gone by the datapoint (the agent's snapshot would miss a short call);
- the metrics datapoint covers a whole 5-minute window and is judged when it closes
  (device-side metrics are reported every 5 minutes at best), an alarm is raised when a
  behaviour is first violated and re-armed once a window is clear
  (``consecutiveDatapointsToAlarm`` and ``...ToClear`` of 1, the quickest);
- a certificate used by two devices is found by the audit's device-certificate-shared
  check, scheduled daily (at midnight UTC here): in a one-day run, at its end.

Statistical thresholds and ML Detect need days (ML: 14) of history and are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edgeward.sim.catalogue import APPS, COHORTS, FLEET_SERVER, SSH
from edgeward.sim.detectors import Alert
from edgeward.sim.fleet import build
from edgeward.sim.telemetry import Sample, expected_tx, traffic_noise

WINDOW = 300.0
CPU_LIMIT = 80.0
LOGIN_LIMIT = 10
TX_MARGIN = 2.0
AUDIT_EVERY = 86400.0
CALIBRATION_FLEET = 400  # gateways whose normal day sets the thresholds


@dataclass(frozen=True)
class Profile:
    """One cohort's security profile."""

    bytes_out: float  # per window
    ports: frozenset[str]  # "tcp/22"
    destinations: frozenset[str]


@dataclass
class AnchorGateway:
    serial: str
    profile: Profile
    window: int | None = None  # index of the open window (start = index * WINDOW)
    cpu: list[float] = field(default_factory=list)
    tx: float = 0.0
    ports: set[str] = field(default_factory=set)
    destinations: set[str] = field(default_factory=set)
    logins: int = 0
    violating: set[str] = field(default_factory=set)
    twin_seen: float | None = None  # the last report from a second device
    audited: bool = False

    def add(self, sample: Sample, interval: float, alerts: list[Alert]) -> None:
        index = math.floor(sample.at / WINDOW)
        if self.window is not None and index != self.window:
            self.close(alerts)
        self.window = index
        self.cpu.append(sample.values["cpu_percent"])
        self.tx += sample.values["net_tx_rate"] * interval
        self.ports.update(f"{proto}/{port}" for proto, port, _, _ in sample.listening)
        self.destinations.update(host for host, _, _, _ in sample.remotes)
        self.logins += sum(e.count for e in sample.events if e.kind == "login")
        if sample.twin:
            self.twin_seen = sample.at

    def close(self, alerts: list[Alert]) -> None:
        """Judge the open window's datapoint, at the window's end."""
        if self.window is None:
            return
        at = (self.window + 1) * WINDOW
        p = self.profile
        violated = {
            "cpu": bool(self.cpu) and sum(self.cpu) / len(self.cpu) > CPU_LIMIT,
            "bytes-out": self.tx > p.bytes_out,
            "listening-tcp-ports": not self.ports <= p.ports,
            "destination-ips": not self.destinations <= p.destinations,
            "failed-logins": self.logins > LOGIN_LIMIT,
        }
        for behaviour, now in violated.items():
            if now and behaviour not in self.violating:
                alerts.append(Alert(at, self.serial, behaviour, detail="fixed threshold"))
                self.violating.add(behaviour)
            elif not now:
                self.violating.discard(behaviour)
        self.window, self.cpu, self.tx, self.logins = None, [], 0.0, 0
        self.ports, self.destinations = set(), set()

    def audit(self, at: float, alerts: list[Alert]) -> None:
        """The daily audit: a certificate seen from two devices in the last day."""
        if not self.audited and self.twin_seen is not None and \
                at - self.twin_seen <= AUDIT_EVERY:
            self.audited = True
            alerts.append(Alert(at, self.serial, "device-certificate-shared",
                                detail="daily audit"))


def audits(start: float, end: float) -> list[float]:
    """The daily audit's times in ``(start, end]``."""
    first = math.floor(start / AUDIT_EVERY) + 1
    return [k * AUDIT_EVERY for k in range(first, math.floor(end / AUDIT_EVERY) + 1)]


def calibrate(seed: int, interval: float) -> list[Profile]:
    """Each cohort's profile, from a normal day of other gateways of the same kinds (an
    operator's knowledge of the fleet, not of the gateways under test)."""
    fleet = build(CALIBRATION_FLEET, seed + 1_000_003, 0.0)
    per_window = max(1, round(WINDOW / interval))
    profiles = []
    for cohort, kind in enumerate(COHORTS):
        windows = sorted(
            expected_tx(g, (w + 0.5) * WINDOW) * interval
            * sum(traffic_noise(g.rng) for _ in range(per_window))
            for g in fleet if g.cohort == cohort for w in range(round(AUDIT_EVERY / WINDOW)))
        p99 = windows[min(len(windows) - 1, int(0.99 * len(windows)))] if windows else 0.0
        apps = [APPS[name] for name in kind.apps]
        ports = {f"{SSH[0]}/{SSH[1]}"} | {f"{proto}/{port}" for app in apps
                                          for proto, port, _ in app.listens}
        hosts = {FLEET_SERVER} | {host for app in apps for host in app.hosts}
        profiles.append(Profile(TX_MARGIN * p99, frozenset(ports), frozenset(hosts)))
    return profiles
