"""Detection on a simulated fleet: edgeward's detectors against an anchor-like baseline.

Usage: ``.venv/bin/python bench/detection.py [--gateways 1000] [--hours 24]
[--instances 8] [--interval 30] [--warmup 60] [--seed 1] [--workers N] [--quick]``

Prints one JSON object. A fleet of simulated gateways (``edgeward.sim``: four cohorts,
daily cycles, per-app load, heavy-tailed traffic) runs for a simulated day after a
warm-up from a cold start; ``--instances`` attacks of every class are injected, each on
its own gateway at a random time, and all three confounders (a rollout, a reboot storm,
a busy hour). In the same run every report goes through the fleet server's detectors
(``edgeward.server.detection``, as its ingest runs them) and through an anchor-like
detector (fixed thresholds over 5-minute windows, a daily audit; see
``edgeward/sim/anchor.py`` for what it is given and why). Per attack class: median and
max time to detect, and misses; false alarms per gateway-day; edgeward's notices (cohort
shifts, anomalies after a boot or release change); wall time. ``--quick``: 40 gateways
for 3 hours, one attack of each class (the CI smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

from edgeward.sim.episodes import ATTACKS, CONFOUNDERS
from edgeward.sim.runner import Scenario, run
from edgeward.sim.summary import summarise


def bench(args: argparse.Namespace) -> dict[str, Any]:
    scenario = Scenario(gateways=args.gateways, hours=args.hours, interval=args.interval,
                        seed=args.seed, warmup=args.warmup * 60.0,
                        attacks=tuple((kind, args.instances) for kind in ATTACKS),
                        confounders=CONFOUNDERS)
    summary = summarise(run(scenario, workers=args.workers))
    mine, theirs = summary["edgeward"], summary["anchor"]
    return {
        "time_to_detect_s": {kind: {"edgeward": _short(mine["attacks"][kind]),
                                    "anchor": _short(theirs["attacks"][kind])}
                             for kind in ATTACKS},
        "false_alarms_per_gateway_day": {"edgeward": mine["false_alarms_per_gateway_day"],
                                         "anchor": theirs["false_alarms_per_gateway_day"]},
        "notices": summary["notices"],
        "wall_s": summary["wall_s"],
        "workers": args.workers,
        "python": platform.python_version(),
        **summary,
    }


def _short(figures: dict[str, Any]) -> dict[str, Any]:
    return {"median": figures["median_s"], "max": figures["max_s"],
            "missed": figures["missed"], "instances": figures["instances"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gateways", type=int, default=1000, help="simulated gateways")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours scored")
    parser.add_argument("--instances", type=int, default=8, help="attacks of each class")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between reports")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="minutes before the scored span, from a cold start")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes (cohorts are simulated apart)")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: --gateways 40 --hours 3 --instances 1")
    args = parser.parse_args()
    if args.quick:
        args.gateways, args.hours, args.instances = 40, 3.0, 1
    result = bench(args)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
