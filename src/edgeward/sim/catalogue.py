"""What a simulated fleet is made of: the apps gateways run and the cohorts they form.

An app has a typical load (CPU share, memory, bytes a second each way), how much of it
follows the time of day (``cycle``: a sinusoid peaking mid-afternoon) and the working
day (``busy``: a bump from 08:00 to 18:00 local time), the cloud it talks to (a small
pool of addresses, as a DNS name resolves to) and the ports it listens on. A cohort is
a model running a set of apps in one region (its time zone) and a share of the fleet:
the server's cohort (same model, same apps) exactly. Addresses are from the
documentation ranges: 192.0.2.0/24 the fleet server, 198.51.100.0/24 the apps' clouds,
203.0.113.0/24 attackers'.
"""

from __future__ import annotations

from dataclasses import dataclass

FLEET_SERVER = "192.0.2.10"
SSH = ("tcp", 22, "sshd")


@dataclass(frozen=True)
class AppKind:
    name: str
    cpu: float  # percent of the host
    memory_mb: float
    tx: float  # bytes a second
    rx: float
    cycle: float  # amplitude of the daily sinusoid (0: flat)
    busy: float  # rise during working hours (0.5: half as much again)
    hosts: tuple[str, ...]  # the app's cloud: one of these at a time
    port: int  # the cloud's port
    listens: tuple[tuple[str, int, str], ...] = ()  # (proto, port, process)
    process: str = ""

    @property
    def proc(self) -> str:
        return self.process or self.name


APPS: dict[str, AppKind] = {app.name: app for app in (
    AppKind("weather", 2.0, 40, 600, 150, 0.05, 0.0,
            ("198.51.100.10", "198.51.100.11"), 443),
    AppKind("modbus-bridge", 6.0, 60, 2500, 2000, 0.10, 0.6,
            ("198.51.100.20", "198.51.100.21", "198.51.100.22"), 8883,
            (("tcp", 502, "modbusd"),), "modbusd"),
    AppKind("camera-relay", 18.0, 180, 45000, 4000, 0.45, 0.2,
            ("198.51.100.30", "198.51.100.31", "198.51.100.32", "198.51.100.33"), 443,
            (("tcp", 554, "rtsp-relay"),), "rtsp-relay"),
    AppKind("mqtt-broker", 4.0, 30, 4000, 5000, 0.20, 0.5,
            ("198.51.100.40", "198.51.100.41"), 8883,
            (("tcp", 1883, "mosquitto"), ("tcp", 8883, "mosquitto")), "mosquitto"),
    AppKind("edge-ml", 22.0, 300, 1500, 800, 0.30, 0.4,
            ("198.51.100.50", "198.51.100.51"), 443, (), "inferd"),
)}


@dataclass(frozen=True)
class CohortKind:
    model: str
    apps: tuple[str, ...]
    tz: float  # hours from UTC: where its day begins
    share: float  # of the fleet
    ram_mb: float
    system_cpu: float  # the OS and the agent
    system_mb: float

    @property
    def name(self) -> str:
        return f"{self.model}/{'+'.join(self.apps)}"


COHORTS: tuple[CohortKind, ...] = (
    CohortKind("gw-a100", ("weather", "modbus-bridge"), 1.0, 0.35, 1024, 2.0, 180),
    CohortKind("gw-a100", ("camera-relay", "mqtt-broker"), 1.0, 0.25, 1024, 2.5, 200),
    CohortKind("gw-x200", ("edge-ml", "modbus-bridge", "mqtt-broker"), -5.0, 0.25, 2048,
               3.0, 260),
    CohortKind("gw-x200", ("weather",), 9.0, 0.15, 2048, 1.5, 220),
)
