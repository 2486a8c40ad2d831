"""A run's outcome as one JSON-ready report: both detectors scored the same way, the
notices edgeward gave instead of alerts, and what was injected."""

from __future__ import annotations

from collections import Counter
from typing import Any

from edgeward.sim.runner import Outcome
from edgeward.sim.scoring import score, truths, windows


def summarise(outcome: Outcome, detections: bool = True) -> dict[str, Any]:
    s = outcome.scenario
    truth = truths(outcome.episodes, outcome.serials)
    confounded = windows(outcome.episodes, outcome.serials)
    since, until = s.start, s.end
    result: dict[str, Any] = {
        "scenario": {"gateways": s.gateways, "hours": s.hours, "interval_s": s.interval,
                     "seed": s.seed, "warmup_s": s.warmup, "attacks": dict(s.attacks),
                     "confounders": list(s.confounders)},
        "reports": sum(c.reports for c in outcome.cohorts),
        "gateway_days": round(s.gateways * s.hours / 24.0, 3),
        "wall_s": round(outcome.wall_s, 2),
    }
    for name, alerts in (("edgeward", outcome.alerts), ("anchor", outcome.anchor)):
        figures = score(name, truth, alerts, confounded, s.gateways, since, until)
        if not detections:
            figures.pop("detections")
        result[name] = figures
    notices = [n for c in outcome.cohorts for n in c.notices if since <= n.at <= until]
    result["notices"] = {
        "cohort_shift": len(notices),
        "cohort_shift_by_metric": dict(sorted(Counter(n.kind.split(".", 1)[1]
                                                      for n in notices).items())),
        "after_change": sum(c.after_change for c in outcome.cohorts),
    }
    result["injected"] = _injected(outcome)
    return result


def _injected(outcome: Outcome) -> dict[str, Any]:
    start = outcome.scenario.start
    by_cause: dict[str, list[float]] = {}
    for e in outcome.episodes:
        if not e.attack:
            by_cause.setdefault(e.cause, []).append(e.start)
    return {cause: {"gateways": len(times), "first_s": round(min(times) - start, 1),
                    "last_s": round(max(times) - start, 1)}
            for cause, times in sorted(by_cause.items())}
