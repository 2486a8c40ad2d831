"""One telemetry report, as the fleet server takes it: the gateway's sample turned into
rates, each app's CPU and memory from its cgroup, and who listens and talks.

The sample's counters are deltas over the interval; the report gives rates (per second),
so a longer interval (an agent that was busy) does not look like a burst. An app's CPU
is a percentage of one CPU (as ``top`` shows it: an app capped at half a core that uses
it all is at 50), from its cgroup's CPU time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeward.device.apps import cgroups
from edgeward.device.telemetry.counters import delta
from edgeward.device.telemetry.sockets import Socket

RATES = {("net", "bytes_sent"): "net_tx_rate", ("net", "bytes_recv"): "net_rx_rate",
         ("net", "packets_sent"): "net_tx_packets_rate",
         ("net", "packets_recv"): "net_rx_packets_rate",
         ("disk", "read_bytes"): "disk_read_rate", ("disk", "write_bytes"): "disk_write_rate"}
GAUGES = ("cpu_percent", "memory_percent", "disk_percent", "load1")


def host_metrics(sample: Mapping[str, Any]) -> dict[str, float]:
    """The gateway's metrics from a sample (rates need its interval)."""
    out = {name: float(sample[name]) for name in GAUGES if name in sample}
    interval = float(sample.get("interval") or 0.0)
    if interval > 0:
        for (group, counter), name in RATES.items():
            value = dict(sample.get(group) or {}).get(counter)
            if value is not None:
                out[name] = round(float(value) / interval, 3)
    return out


@dataclass
class AppUsage:
    """Each app's CPU time at the last reading, for its share over the interval."""

    read: Callable[[str], dict[str, int]] = field(
        default=lambda app: cgroups.usage(cgroups.existing(app)))
    last: dict[str, int] = field(default_factory=dict)

    def measure(self, apps: Iterable[str], interval: float) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for app in apps:
            now = self.read(app)
            before = self.last.get(app)
            self.last[app] = now["cpu_usec"]
            values = {"memory_bytes": float(now["memory_bytes"])}
            if before is not None and interval > 0:
                used = delta(before, now["cpu_usec"])
                values["cpu_percent"] = round(100.0 * used / (interval * 1e6), 2)
            out[app] = values
        return out


def build(at: float, interval: float, boot_id: str, sample: Mapping[str, Any],
          apps: Mapping[str, dict[str, float]], sockets: Iterable[Socket]) -> dict[str, Any]:
    listening = [s.to_dict() for s in sockets if s.kind == "listen"][:256]
    remotes = [s.to_dict() for s in sockets if s.kind == "remote"][:512]
    return {"at": at, "interval": round(interval, 3), "boot_id": boot_id[:32],
            "metrics": host_metrics(sample), "apps": {a: dict(v) for a, v in apps.items()},
            "listening": listening, "remotes": remotes}
