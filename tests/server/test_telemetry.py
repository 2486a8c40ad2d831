"""Telemetry over real HTTPS on both databases: gateways report (mutual TLS), a batch sent
twice is stored once, bad reports are refused whole; the detectors turn a miner in an
app and a host no other gateway talks to into alerts the tenant's operators read; the
metric series comes back bucketed for charts."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.server.harness import Fleet
from tests.server.test_updates_api import Setup, prepare

APP = "weather"

ANY = "0.0.0.0"  # noqa: S104 (an address in a report, not a bind)


def report(at: float, cpu: float = 10.0, app_cpu: float = 4.0, **extra: Any) -> dict[str, Any]:
    return {"at": at, "interval": 30.0, "boot_id": "b1" * 8,
            "metrics": {"cpu_percent": cpu, "memory_percent": 40.0, "disk_percent": 12.0,
                        "net_tx_rate": 2000.0, "net_rx_rate": 3000.0},
            "apps": {APP: {"cpu_percent": app_cpu, "memory_bytes": 40e6}},
            "listening": [{"proto": "tcp", "address": ANY, "port": 8080,
                           "process": "weatherd", "app": APP}],
            "remotes": [{"host": "198.51.100.7", "port": 443, "process": "weatherd",
                         "app": APP}], **extra}


def post(fleet: Fleet, serial: str, reports: list[dict[str, Any]], batch: str | None = None,
         status: int = 200) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.post("/v1/gateway/telemetry",
                         json={"batch": batch or os.urandom(16).hex(), "reports": reports})
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def alerts_of(setup: Setup) -> list[dict[str, Any]]:
    with setup.as_("hotels/eyes") as viewer:
        answer = viewer.get("/v1/alerts")
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def history(start: float, n: int, **values: Any) -> list[dict[str, Any]]:
    return [report(start + 30 * i, **values) for i in range(n)]


def test_reports_are_stored_once_and_charted(fleet: Fleet) -> None:
    setup = prepare(fleet)
    start = time.time() - 3600
    batch = os.urandom(16).hex()
    assert post(fleet, "gw-1", history(start, 40), batch)["stored"] == 40
    assert post(fleet, "gw-1", history(start, 40), batch) == {"stored": 0, "duplicate": True}
    with setup.as_("hotels/eyes") as viewer:
        cpu = viewer.get("/v1/gateways/gw-1/metrics?points=60").json()
        app = viewer.get(f"/v1/gateways/gw-1/metrics?metric=cpu_percent&app={APP}").json()
    assert sum(p["count"] for p in cpu["points"]) == 40  # not 80: the resend stored nothing
    assert {p["mean"] for p in cpu["points"]} == {10.0} and cpu["step"] == 360
    assert sum(p["count"] for p in app["points"]) == 40
    assert {p["mean"] for p in app["points"]} == {4.0}
    with setup.as_("other/ops") as other:
        assert other.get("/v1/gateways/gw-1/metrics").status_code == 404
    assert alerts_of(setup) == []  # a quiet gateway raises nothing


def test_bad_reports_are_refused_whole(fleet: Fleet) -> None:
    setup = prepare(fleet)
    now = time.time()
    for bad in ({"metrics": {"cpu_percent": -1.0}}, {"metrics": {"CPU": 1.0}},
                {"interval": 0}, {"remotes": [{"host": "a b", "port": 1}]},
                {"listening": [{"proto": "sctp", "address": "", "port": 1}]},
                {"apps": {"Bad App": {}}}, {"surprise": 1}):
        post(fleet, "gw-1", [report(now - 60), report(now, **bad)], status=422)
    post(fleet, "gw-1", [], status=422)
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/telemetry", json={
            "batch": "not-hex", "reports": [report(now)]}).status_code == 422
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.get("/v1/gateways/gw-1/metrics").json()["points"] == []


def test_a_miner_in_an_app_and_a_host_nobody_talks_to_raise_alerts(fleet: Fleet) -> None:
    setup = prepare(fleet)
    start = time.time() - 3000
    for serial in ("gw-1", "gw-2"):
        post(fleet, serial, history(start, 50))
    assert alerts_of(setup) == []
    mined = [report(start + 1500 + 30 * i, cpu=96.0, app_cpu=93.0) for i in range(2)]
    mined[1]["remotes"].append({"host": "203.0.113.66", "port": 3333, "process": "xmrig",
                                "app": APP})
    assert post(fleet, "gw-1", mined)["alerts"] >= 3
    raised = {(a["kind"], a["app"]): a for a in alerts_of(setup)}
    app_cpu = raised[("anomaly.cpu_percent", APP)]
    assert app_cpu["gateway"] == "gw-1" and app_cpu["severity"] == "high"
    assert "CPU of app weather at 93" in app_cpu["detail"]
    assert app_cpu["evidence"]["expected"] < 10 and app_cpu["status"] == "open"
    assert ("anomaly.cpu_percent", "") in raised  # the gateway's own CPU too
    remote = raised[("new-remote", APP)]
    assert "203.0.113.66" in remote["detail"] and "xmrig" in remote["detail"]
    assert remote["evidence"]["seen_by"] == 0
    # the same miner, still running, is not a new alert every interval
    again = [report(start + 1560 + 30 * i, cpu=96.0, app_cpu=93.0) for i in range(3)]
    assert post(fleet, "gw-1", again)["alerts"] == 0
    # gw-2 talking to the host gw-1 has always used raises nothing
    assert post(fleet, "gw-2", [report(start + 1600)])["alerts"] == 0


def event(kind: str, what: str, app: str = APP, **detail: Any) -> dict[str, Any]:
    return {"time": time.time(), "app": app, "kind": kind, "what": what, "detail": detail}


def test_events_that_are_alerts_by_themselves_raise_at_once(fleet: Fleet) -> None:
    setup = prepare(fleet)
    for serial in ("gw-1", "gw-2"):  # both listen on 8080 and have learnt their level
        post(fleet, serial, history(time.time() - 3000, 25))
    with fleet.gateway("gw-1") as gw:
        sent = gw.post("/v1/gateway/events", json={"events": [
            event("exec", "/tmp/.x/kworkerd started from a writable filesystem (pid 77)",
                  exe="/tmp/.x/kworkerd", pid=77),
            event("listen", "new listening port tcp/4444 on 0.0.0.0 (nc)", proto="tcp",
                  port=4444, address=ANY, process="nc"),
            event("listen", "new listening port tcp/8080 on 0.0.0.0 (weatherd)", proto="tcp",
                  port=8080, address=ANY, process="weatherd"),
            *[event("login", f"failed password for root from 192.0.2.{n}", app="",
                    source=f"192.0.2.{n}") for n in range(19)]]})
        assert sent.status_code == 200, sent.text
        raised = {(a["kind"], a["severity"]) for a in alerts_of(setup)}
        assert raised == {("exec.writable", "high"), ("new-listen", "high")}
        assert "tcp/4444" in next(a["detail"] for a in alerts_of(setup)
                                  if a["kind"] == "new-listen")
        batch = os.urandom(16).hex()  # the 20th failed login: a brute force
        body = {"batch": batch, "events": [event("login", "failed password for admin",
                                                 app="")]}
        assert gw.post("/v1/gateway/events", json=body).json()["accepted"] == 1
        assert gw.post("/v1/gateway/events", json=body).json() == {
            "accepted": 0, "dropped": 0, "duplicate": True}
    assert ("login.bruteforce", "high") in {(a["kind"], a["severity"])
                                            for a in alerts_of(setup)}
    # the report that follows names the same port: not raised again
    again = report(time.time(), listening=[{"proto": "tcp", "address": ANY,
                                            "port": 4444, "process": "nc", "app": APP}])
    assert post(fleet, "gw-1", [again])["alerts"] == 0


def test_a_connection_refused_to_a_host_no_one_talks_to_is_an_alert(fleet: Fleet) -> None:
    setup = prepare(fleet)
    for serial in ("gw-1", "gw-2"):  # both talk to 198.51.100.7 (the app's cloud)
        post(fleet, serial, history(time.time() - 3000, 5))

    def refused(target: str, mechanism: str = "egress") -> dict[str, Any]:
        return event("network", f"connect {target} denied ({mechanism})", access="connect",
                     target=target, mechanism=mechanism)

    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/events", json={"events": [
            refused("198.51.100.7:8443"),  # its cohort's cloud, another port: a list to fix
            refused("127.0.0.1:5000"),  # a neighbour on the gateway itself
            refused("[2001:db8::66]:3333", "no-network")]}).is_success
    raised = [a for a in alerts_of(setup) if a["kind"] == "egress.blocked"]
    assert len(raised) == 1 and raised[0]["severity"] == "high" and raised[0]["app"] == APP
    assert "[2001:db8::66]:3333" in raised[0]["detail"]
    assert raised[0]["evidence"]["seen_by"] == 0
