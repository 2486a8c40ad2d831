"""The sim's cohort level gives what the server's ``CohortNow`` gives, only faster."""

from __future__ import annotations

import random

from edgeward.server.detection.watch import CohortNow
from edgeward.sim.levels import Levels


def test_the_level_is_cohortnow_s_whatever_the_order_of_reports_and_silences() -> None:
    rng = random.Random(4)
    fast, reference = Levels(horizon=90.0), CohortNow(horizon=90.0)
    gateways = [f"g{i}" for i in range(9)]
    checked = 0
    for step in range(300):
        now = 1000.0 + 30.0 * step
        fast.expire(now)
        for gateway in rng.sample(gateways, rng.randint(0, len(gateways))):  # some are silent
            values = {"cpu_percent": round(rng.uniform(0, 20), 1),  # ties happen
                      "net_tx_rate": rng.lognormvariate(8, 1)}
            for key in values:
                assert fast.level(key, gateway) == reference.level(key, gateway, now)
                checked += 1
            fast.record(gateway, now, values)
            reference.record(gateway, now, values)
    assert checked > 2000
    assert fast.level("cpu_percent", "nobody") == reference.level("cpu_percent", "nobody",
                                                                  1000.0 + 30.0 * 299)
    assert Levels().level("cpu_percent", "g0") is None
