"""Scoring a hand-made list of alerts against a hand-made ground truth."""

from __future__ import annotations

import pytest

from edgeward.sim.detectors import Alert
from edgeward.sim.episodes import Episode
from edgeward.sim.scoring import LINGER, Truth, score, truths, windows

SINCE, UNTIL = 600.0, 20_000.0


def test_detections_misses_and_false_alarms_are_told_apart() -> None:
    truth = [Truth("miner", "G1", 1000.0, 5000.0), Truth("exfil", "G2", 2000.0, 10_000.0),
             Truth("miner", "G4", 3000.0, 4000.0)]
    confounded = {"G3": [(2500.0, 4500.0, "busy-hour")]}
    alerts = [
        Alert(990.0, "G1", "anomaly.cpu_percent"),  # before the attack: false
        Alert(1030.0, "G1", "anomaly.memory_percent"),  # the attack's, but says nothing of it
        Alert(1060.0, "G1", "anomaly.cpu_percent", app="weather"),  # detected: 60 s
        Alert(1100.0, "G1", "new-remote"),  # a second signal: 100 s
        Alert(5000.0 + LINGER, "G1", "anomaly.cpu_percent"),  # still the attack's (linger)
        Alert(10_000.0 + LINGER + 1, "G2", "anomaly.net_tx_rate"),  # too late: false
        Alert(3000.0, "G3", "anomaly.cpu_percent"),  # in a busy hour: false, explained
        Alert(500.0, "G3", "anomaly.cpu_percent"),  # in the warm-up
        Alert(3004.5, "G4", "new-remote"),  # detected: 4.5 s
        Alert(UNTIL + 1, "G3", "new-listen"),  # after the scored span
    ]
    result = score("edgeward", truth, alerts, confounded, gateways=4, since=SINCE,
                   until=UNTIL)
    miner, exfil = result["attacks"]["miner"], result["attacks"]["exfil"]
    assert miner == {"instances": 2, "detected": 2, "missed": 0, "median_s": 32.2,
                     "max_s": 60.0, "min_s": 4.5,
                     "median_s_by_signal": {"anomaly.cpu_percent": 60.0, "new-remote": 52.2}}
    assert exfil["detected"] == 0 and exfil["missed"] == 1 and exfil["median_s"] is None
    first = result["detections"][0]
    assert first == {"attack": "exfil", "gateway": "G2", "start_s": 1400.0,
                     "detected_after_s": None, "signal": None, "signals": {}}
    assert result["detections"][1]["signal"] == "anomaly.cpu_percent"
    assert result["detections"][1]["signals"] == {"anomaly.cpu_percent": 60.0,
                                                  "new-remote": 100.0}
    assert result["false_alarms"] == 3
    assert result["false_alarms_by_kind"] == {"anomaly.cpu_percent": 2,
                                              "anomaly.net_tx_rate": 1}
    assert result["false_alarms_by_confounder"] == {"busy-hour": 1, "none": 2}
    assert result["cold_start_alerts"] == 1 and result["alerts"] == len(alerts)
    days = 4 * (UNTIL - SINCE) / 86400
    assert result["false_alarms_per_gateway_day"] == pytest.approx(3 / days, abs=1e-4)


def test_the_anchor_is_credited_only_with_its_own_behaviours() -> None:
    truth = [Truth("clone", "G1", 1000.0, 9000.0)]
    alerts = [Alert(1030.0, "G1", "cloned-identity"),
              Alert(8000.0, "G1", "device-certificate-shared")]
    result = score("anchor", truth, alerts, {}, gateways=1, since=SINCE, until=UNTIL)
    assert result["attacks"]["clone"]["median_s"] == 7000.0
    assert result["false_alarms"] == 0


def test_truths_and_confounder_windows_come_from_the_episodes() -> None:
    serials = ["A", "B", "C"]
    episodes = [Episode("miner", 0, 100.0, 200.0), Episode("update", 1, 50.0, 9e9, down=60,
                                                           cause="rollout"),
                Episode("busy", 2, 10.0, 3610.0, rate=2.0, cause="busy-hour")]
    assert truths(episodes, serials) == [Truth("miner", "A", 100.0, 200.0)]
    assert windows(episodes, serials) == {"B": [(50.0, 50.0 + 60 + 1800, "rollout")],
                                          "C": [(10.0, 3610.0 + LINGER, "busy-hour")]}
