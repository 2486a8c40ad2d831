"""The detection benchmark keeps working (a ``--quick`` run: 40 gateways for 3 hours, one
attack of each class): every figure is there for both detectors, and edgeward catches the
miner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgeward.sim.episodes import ATTACKS

BENCH = Path(__file__).resolve().parents[2] / "bench" / "detection.py"


def test_detection_bench_runs_quick() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--quick", "--workers", "2"],
                         check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.stdout)
    assert result["scenario"]["gateways"] == 40 and result["scenario"]["hours"] == 3.0
    assert result["reports"] > 40 * 3 * 120 and result["wall_s"] > 0
    for kind in ATTACKS:
        for name in ("edgeward", "anchor"):
            figures = result["time_to_detect_s"][kind][name]
            assert set(figures) == {"median", "max", "missed", "instances"}
            assert figures["instances"] == 1
    miner = result["time_to_detect_s"]["miner"]["edgeward"]
    assert miner["missed"] == 0 and 0 <= miner["median"] < 60
    for name in ("edgeward", "anchor"):
        assert result["false_alarms_per_gateway_day"][name] >= 0
        assert result[name]["false_alarms_per_gateway_day"] == \
            result["false_alarms_per_gateway_day"][name]
    assert {"cohort_shift", "after_change"} <= set(result["notices"])
    assert set(result["injected"]) == {"rollout", "reboot-storm", "busy-hour"}
