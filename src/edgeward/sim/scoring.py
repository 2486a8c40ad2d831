"""Scoring a detector's alerts against the ground truth of the attacks injected.

- An attack is **detected** by the first alert on its gateway, at or after its start and
  at most ``LINGER`` after its end, of a kind that names what the attack does (the
  ``EXPECTED`` kinds of its class: a miner by a CPU anomaly or a new remote host, not by
  a memory wobble that happened to come then); **time to detect** is that alert's time
  less the attack's start. No such alert: **missed**.
- Every alert on an attacked gateway in that span belongs to the attack (follow-ups,
  other symptoms); every other alert in the scored span is a **false alarm**, counted
  per gateway-day, by kind, and by the confounder it fell in (on that gateway, from the
  confounder's start to half an hour after it, or to ``LINGER`` after a busy hour).
- Alerts before the scored span (the warm-up, from a cold start) are counted apart.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgeward.sim.detectors import Alert
from edgeward.sim.episodes import ATTACKS, Episode

LINGER = 900.0
SETTLE = 1800.0  # after a boot, what follows may still be the confounder's
EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {
    "edgeward": {
        "miner": ("anomaly.cpu_percent", "new-remote"),
        "beacon": ("new-remote",),
        "backdoor": ("new-listen",),
        "bruteforce": ("login.bruteforce",),
        "exfil": ("drift.net_tx_rate", "anomaly.net_tx_rate"),
        "clone": ("cloned-identity",),
    },
    "anchor": {
        "miner": ("cpu", "destination-ips"),
        "beacon": ("destination-ips",),
        "backdoor": ("listening-tcp-ports",),
        "bruteforce": ("failed-logins",),
        "exfil": ("bytes-out",),
        "clone": ("device-certificate-shared",),
    },
}


@dataclass(frozen=True)
class Truth:
    kind: str
    gateway: str
    start: float
    end: float


def truths(episodes: Sequence[Episode], serials: Sequence[str]) -> list[Truth]:
    return [Truth(e.kind, serials[e.gateway], e.start, e.end) for e in episodes if e.attack]


def windows(episodes: Sequence[Episode], serials: Sequence[str]
            ) -> dict[str, list[tuple[float, float, str]]]:
    """Per gateway, the spans its confounders explain: (start, end, confounder)."""
    out: dict[str, list[tuple[float, float, str]]] = {}
    for e in episodes:
        if e.attack:
            continue
        end = e.start + e.down + SETTLE if e.kind in ("update", "reboot") else e.end + LINGER
        out.setdefault(serials[e.gateway], []).append((e.start, end, e.cause))
    return out


def score(detector: str, truth: Sequence[Truth], alerts: Sequence[Alert],
          confounded: Mapping[str, list[tuple[float, float, str]]], gateways: int,
          since: float, until: float) -> dict[str, Any]:
    """The figures of one detector over the scored span ``[since, until)``."""
    expected = EXPECTED[detector]
    by_gateway: dict[str, list[Alert]] = {}
    for alert in sorted(alerts, key=lambda a: a.at):
        by_gateway.setdefault(alert.gateway, []).append(alert)
    attacked: dict[str, list[Truth]] = {}
    for t in truth:
        attacked.setdefault(t.gateway, []).append(t)
    detections = []
    for t in sorted(truth, key=lambda t: (t.kind, t.start)):
        signals: dict[str, float] = {}  # the first alert of each expected kind
        for a in by_gateway.get(t.gateway, ()):
            if t.start <= a.at <= t.end + LINGER and a.kind in expected[t.kind]:
                signals.setdefault(a.kind, round(a.at - t.start, 1))
        first = min(signals.items(), key=lambda kv: kv[1], default=None)
        detections.append({"attack": t.kind, "gateway": t.gateway,
                           "start_s": round(t.start - since, 1),
                           "detected_after_s": None if first is None else first[1],
                           "signal": None if first is None else first[0],
                           "signals": signals})
    false: list[Alert] = []
    cold = 0
    for alert in alerts:
        if alert.at < since:
            cold += 1
        elif alert.at < until and not any(t.start <= alert.at <= t.end + LINGER
                                           for t in attacked.get(alert.gateway, ())):
            false.append(alert)
    causes = Counter(next((cause for start, end, cause in confounded.get(a.gateway, ())
                           if start <= a.at <= end), "none") for a in false)
    days = gateways * (until - since) / 86400.0
    return {
        "attacks": {kind: _class_figures([d for d in detections if d["attack"] == kind])
                    for kind in ATTACKS if any(t.kind == kind for t in truth)},
        "false_alarms": len(false),
        "false_alarms_per_gateway_day": round(len(false) / days, 4) if days else None,
        "false_alarms_by_kind": dict(sorted(Counter(a.kind for a in false).items())),
        "false_alarms_by_confounder": dict(sorted(causes.items())),
        "alerts": len(alerts), "cold_start_alerts": cold,
        "detections": detections,
    }


def _class_figures(detections: list[dict[str, Any]]) -> dict[str, Any]:
    times = [d["detected_after_s"] for d in detections if d["detected_after_s"] is not None]
    kinds = sorted({k for d in detections for k in d["signals"]})
    return {"instances": len(detections), "detected": len(times),
            "missed": len(detections) - len(times),
            "median_s": round(statistics.median(times), 1) if times else None,
            "max_s": max(times) if times else None, "min_s": min(times) if times else None,
            "median_s_by_signal": {k: round(statistics.median(
                d["signals"][k] for d in detections if k in d["signals"]), 1) for k in kinds}}
