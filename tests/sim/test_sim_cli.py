"""``edgeward sim`` as a process: the JSON report, the tables, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

ARGS = ("--gateways", "16", "--hours", "1", "--warmup", "20", "--seed", "2")


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeward", "sim", *args],
                          capture_output=True, text=True, timeout=300)


def test_the_json_report_scores_both_detectors_on_what_was_injected() -> None:
    done = sim(*ARGS, "--attack", "miner", "--attack", "backdoor", "--confounder",
               "busy-hour", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["scenario"] == {"gateways": 16, "hours": 1.0, "interval_s": 30.0, "seed": 2,
                                  "warmup_s": 1200.0, "attacks": {"miner": 1, "backdoor": 1},
                                  "confounders": ["busy-hour"]}
    assert result["reports"] >= 16 * 160 * 0.95 and result["gateway_days"] == gateway_days(16, 1)
    for name in ("edgeward", "anchor"):
        figures = result[name]
        assert set(figures["attacks"]) == {"miner", "backdoor"}
        assert [d["attack"] for d in figures["detections"]] == ["backdoor", "miner"]
        assert {"false_alarms", "false_alarms_per_gateway_day", "false_alarms_by_kind",
                "false_alarms_by_confounder", "cold_start_alerts"} <= set(figures)
    mine = result["edgeward"]["attacks"]
    assert mine["miner"]["detected"] == 1 and mine["miner"]["max_s"] < 60
    assert mine["backdoor"]["detected"] == 1
    assert set(result["notices"]) == {"cohort_shift", "cohort_shift_by_metric", "after_change"}
    assert result["injected"]["busy-hour"]["gateways"] > 0
    again = json.loads(sim(*ARGS, "--attack", "miner", "--attack", "backdoor",
                           "--confounder", "busy-hour", "--json").stdout)
    assert again["edgeward"] == result["edgeward"]  # a seed fixes the outcome


def gateway_days(gateways: int, hours: float) -> float:
    return round(gateways * hours / 24, 3)


def test_people_get_tables() -> None:
    done = sim(*ARGS, "--attack", "all")
    assert done.returncode == 0, done.stderr
    for words in ("Attacks (time to detect", "Per attack class", "False alarms, edgeward",
                  "False alarms, anchor-like", "Notices instead of alerts", "clone", "exfil"):
        assert words in done.stdout


def test_bad_options_are_refused_with_a_reason() -> None:
    done = sim("--server", "https://127.0.0.1:1", "--gateways", "2")
    assert done.returncode != 0 and "needs --ca and --factory" in done.stderr
    done = sim("--attack", "ransomware")
    assert done.returncode != 0 and "ransomware" in done.stderr
    done = sim("--gateways", "3", "--attack", "all", "--instances", "2")
    assert done.returncode != 0 and "12 attacks need as many gateways" in done.stderr
