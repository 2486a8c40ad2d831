"""One telemetry sample of the gateway, every interval (psutil).

Gauges as they are (memory, the data area's disk use, load); counters as deltas since
the previous sample (CPU busy share, network bytes and packets, disk bytes), with
counter resets handled (counters.py). The first sample has gauges only: there is
nothing yet to count from.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from edgeward.device.telemetry.counters import busy_percent, deltas


def _cpu() -> dict[str, float]:
    return dict(psutil.cpu_times()._asdict())


def _net() -> dict[str, int]:
    io = psutil.net_io_counters()
    return {"bytes_sent": io.bytes_sent, "bytes_recv": io.bytes_recv,
            "packets_sent": io.packets_sent, "packets_recv": io.packets_recv}


def _disk() -> dict[str, int]:
    io = psutil.disk_io_counters()
    return {"read_bytes": io.read_bytes, "write_bytes": io.write_bytes} if io else {}


@dataclass
class Sampler:
    data: Path  # the data area: its disk use is the one that fills up
    clock: Callable[[], float] = time.time
    at: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    net: dict[str, int] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)

    def sample(self) -> dict[str, Any]:
        now, cpu, net, disk = self.clock(), _cpu(), _net(), _disk()
        memory = psutil.virtual_memory()
        usage = psutil.disk_usage(str(self.data))
        out: dict[str, Any] = {
            "at": now,
            "memory_percent": round(memory.percent, 2),
            "memory_used": memory.total - memory.available,
            "disk_percent": round(usage.percent, 2),
            "load1": round(os.getloadavg()[0], 2),
        }
        if self.at is not None:
            out["interval"] = round(now - self.at, 3)
            out["cpu_percent"] = busy_percent(self.cpu, cpu)
            out["net"] = deltas(self.net, net)
            out["disk"] = deltas(self.disk, disk)
        self.at, self.cpu, self.net, self.disk = now, cpu, net, disk
        return out
