"""Simulated reports and events as the agent sends them: ``POST /v1/gateway/telemetry``
(at most ``MAX_REPORTS`` reports a batch) and ``POST /v1/gateway/events``.

A report carries every metric the agent's does; those the detectors do not watch are
derived from the ones they do (packets from bytes, load from CPU, disk from the apps'
activity), so that they move together as on a real gateway.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from edgeward.server.detection import metrics
from edgeward.sim.telemetry import ANY, Event, Sample

MAX_REPORTS = 60
MAX_EVENTS = 500
T = TypeVar("T")


def report(sample: Sample, interval: float) -> dict[str, Any]:
    values = sample.values
    gateway: dict[str, float] = {}
    apps: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        app, metric = metrics.split(key)
        if app:
            apps.setdefault(app, {})[metric] = round(value, 3)
        else:
            gateway[metric] = round(value, 3)
    cpu, tx, rx = values["cpu_percent"], values["net_tx_rate"], values["net_rx_rate"]
    gateway.update({
        "disk_percent": 41.5, "load1": round(cpu / 50.0, 2),
        "net_tx_packets_rate": round(tx / 600.0, 2), "net_rx_packets_rate": round(rx / 450.0, 2),
        "disk_read_rate": round(20.0 * cpu, 1), "disk_write_rate": round(2.0 * tx + 5e3, 1),
    })
    return {
        "at": round(sample.at, 3), "interval": interval, "boot_id": sample.boot_id,
        "metrics": gateway, "apps": apps,
        "listening": [{"proto": proto, "address": ANY, "port": port,
                       "process": process, "app": app}
                      for proto, port, process, app in sample.listening],
        "remotes": [{"host": host, "port": port, "process": process, "app": app}
                    for host, port, process, app in sample.remotes],
    }


def event(e: Event) -> dict[str, Any]:
    return {"time": round(e.at, 3), "app": e.app, "kind": e.kind, "what": e.what,
            "detail": e.detail, "count": e.count}


def telemetry_batch(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"batch": secrets.token_hex(16), "reports": list(reports)}


def events_batch(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"batch": secrets.token_hex(16), "events": list(events)}


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
