"""Remediation carried out by a running agent: the operator cuts the hostile app's
network (it restarts with an egress filter that allows nothing, even where its list
allowed), gives it back, quarantines the gateway (every app cut, the agent still
reachable: that is how the order to release it arrives), stops the app, and runs the
hardening audit on demand."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from edgeward.device.apps import remedy
from tests.escape.conftest import GATEWAY, Fleet
from tests.escape.test_escape_battery import failed


def order(fleet: Fleet, action: str, app: str | None = None) -> dict[str, Any]:
    made = fleet.ops.call("POST", f"/v1/gateways/{GATEWAY}/actions",
                          {"action": action, **({"app": app} if app else {})})
    end = time.monotonic() + 60
    while time.monotonic() < end:
        for row in fleet.ops.call("GET", f"/v1/gateways/{GATEWAY}/actions"):
            if row["id"] == made["id"] and row["status"] in ("done", "failed"):
                return dict(row)
        time.sleep(0.2)
    raise AssertionError(f"{action} was not carried out; the agent said: {fleet.said[-5:]}")


def running_again(fleet: Fleet, app: str, after: float) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        row = fleet.apps().get(app, {})
        since = row.get("since")
        if row.get("state") == "running" and since and \
                dt.datetime.fromisoformat(since).timestamp() >= after - 1:
            return
        time.sleep(0.2)
    raise AssertionError(f"{app} did not start again")


def test_cutting_and_restoring_an_apps_network(fleet: Fleet) -> None:
    assert fleet.attack("connect", fleet.allowed_port)["result"] == "CONNECTED welcome\n"
    before = time.time()
    done = order(fleet, "cut-network", "intruder")
    assert done["status"] == "done" and "without network" in done["result"]
    running_again(fleet, "intruder", before)
    failed(fleet.attack("connect", fleet.allowed_port), "PermissionError")
    before = time.time()
    assert order(fleet, "restore-network", "intruder")["status"] == "done"
    running_again(fleet, "intruder", before)
    assert fleet.attack("connect", fleet.allowed_port)["result"] == "CONNECTED welcome\n"


def test_quarantine_cuts_every_app_and_the_agent_still_listens(fleet: Fleet) -> None:
    before = time.time()
    assert order(fleet, "quarantine")["status"] == "done"
    assert remedy.quarantined(fleet.board)
    running_again(fleet, "intruder", before)
    failed(fleet.attack("connect", fleet.allowed_port), "PermissionError")
    before = time.time()
    assert order(fleet, "release")["status"] == "done"  # the order channel stayed open
    assert not remedy.quarantined(fleet.board)
    running_again(fleet, "intruder", before)
    assert fleet.attack("connect", fleet.allowed_port)["result"] == "CONNECTED welcome\n"


def test_stopping_an_app_and_an_order_that_cannot_be_carried_out(fleet: Fleet) -> None:
    assert order(fleet, "stop-app", "intruder")["status"] == "done"
    assert fleet.apps()["intruder"]["state"] == "stopped"
    assert fleet.apps()["minibar"]["state"] == "running"  # the neighbour carries on
    gone = order(fleet, "cut-network", "no-such-app")
    assert gone["status"] == "failed" and "no-such-app" in gone["result"]


def test_an_audit_order_runs_the_hardening_audit_now(fleet: Fleet) -> None:
    """On demand, not at the daily time: the agent audits the booted slot and its
    findings reach the server within seconds, fresh ones (last seen after the order)."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    done = order(fleet, "audit")
    assert done["status"] == "done", done
    counted = re.fullmatch(r"hardening audit run: (\d+) findings \((\d+) high\), sent to "
                           r"the server", done["result"])
    assert counted is not None and int(counted[1]) > 0, done["result"]  # listeners, at least
    end = time.monotonic() + 30
    while True:
        rows = [f for f in fleet.ops.call("GET", f"/v1/findings?gateway={GATEWAY}"
                                                 "&source=gateway")["findings"]
                if dt.datetime.fromisoformat(f["last_seen"]) >= before]
        if len(rows) == int(counted[1]):
            break
        assert time.monotonic() < end, (rows, done, fleet.said[-5:])
        time.sleep(0.2)
    assert sum(f["severity"] == "high" for f in rows) == int(counted[2])
