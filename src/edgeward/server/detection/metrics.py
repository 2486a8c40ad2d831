"""Which metrics the detectors watch, and on what scale.

A report's metrics arrive as a flat map: the gateway's (``cpu_percent``,
``memory_percent``, ``net_tx_rate`` in bytes a second, ...) and each app's as
``app/<name>/<metric>``. Shares (percent) are judged as they are; rates, which span
orders of magnitude and are heavy-tailed, on ``log1p``, so "ten times more traffic" is
the same jump on a quiet gateway as on a busy one. Each metric has a floor for its
spread (a flat metric is not an anomaly factory) and a default prior for a cohort
nobody has seen yet; network egress also runs the drift test, relative to the cohort
(a daily cycle is everyone's; a creep of one gateway is not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgeward.server.detection.baseline import Prior

APP_PREFIX = "app/"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    log: bool  # judged on log1p(value)
    min_mad: float  # on the judged scale
    prior: Prior  # on the judged scale: a cohort nobody has seen yet
    drift: tuple[float, float] | None = None  # (delta, threshold) of Page-Hinkley
    title: str = ""


SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("cpu_percent", False, 2.0, Prior(10.0, 5.0), title="CPU"),
    MetricSpec("memory_percent", False, 2.0, Prior(40.0, 10.0), title="memory"),
    MetricSpec("net_tx_rate", True, 0.35, Prior(math.log1p(2000.0), 1.0),
               # a rise of 10% over the cohort's is tolerated, a sample at a time: what
               # sites whose working day starts earlier or later than their cohort's
               # show every morning and evening (bench/detection.py: 0.02 raised 0.4
               # false drifts a gateway-day)
               drift=(0.1, 12.0), title="network sent"),
    MetricSpec("net_rx_rate", True, 0.35, Prior(math.log1p(2000.0), 1.0),
               title="network received"),
    # an app's daemon mostly waits (on a sensor, a socket): a few % of one CPU
    MetricSpec("app_cpu_percent", False, 2.0, Prior(2.0, 2.0), title="CPU"),
    MetricSpec("app_memory_bytes", True, 0.2, Prior(math.log1p(50e6), 1.0), title="memory"),
)}
APP_METRICS = {"cpu_percent": "app_cpu_percent", "memory_bytes": "app_memory_bytes"}


def app_key(app: str, metric: str) -> str:
    return f"{APP_PREFIX}{app}/{metric}"


def split(key: str) -> tuple[str, str]:
    """``(app, metric)`` of a key ("" for the gateway's own)."""
    if key.startswith(APP_PREFIX):
        app, _, metric = key[len(APP_PREFIX):].rpartition("/")
        return app, metric
    return "", key


def spec_of(key: str) -> MetricSpec | None:
    """The spec a key is judged by, None for a metric that is only stored."""
    app, metric = split(key)
    if app:
        name = APP_METRICS.get(metric)
        return SPECS[name] if name else None
    spec = SPECS.get(metric)
    return spec if spec is not None and not spec.name.startswith("app_") else None


def scale(spec: MetricSpec, value: float) -> float:
    return math.log1p(max(0.0, value)) if spec.log else value


def unscale(spec: MetricSpec, value: float) -> float:
    return math.expm1(value) if spec.log else value


def describe(key: str) -> str:
    """"CPU" or "CPU of app miner", for a person."""
    app, metric = split(key)
    spec = spec_of(key)
    title = spec.title if spec and spec.title else metric
    return f"{title} of app {app}" if app else title
