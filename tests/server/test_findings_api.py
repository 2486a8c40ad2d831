"""Audit findings over real HTTPS, on SQLite and PostgreSQL: a gateway reports its
hardening audit with its client certificate (the report replaces its set, a batch is
stored once), operators of its tenant read those and the fleet audits' findings."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from edgeward.server.db.models import Gateway
from edgeward.server.db.monitoring import AuditFinding, GatewayMonitor, IngestReceipt
from edgeward.server.services.registry import aware
from tests.server.harness import Fleet
from tests.server.test_releases import entry
from tests.server.test_updates_api import Setup, prepare

ROOT_LOGIN = {"check": "ssh.root-login", "severity": "high",
              "title": "root may log in over SSH",
              "detail": "/etc/ssh/sshd_config:12 PermitRootLogin yes",
              "advice": "set PermitRootLogin no (or prohibit-password)"}
SETUID = {"check": "files.setuid", "severity": "medium", "title": "a set-uid program",
          "detail": "/usr/bin/helper (root, 4755)", "advice": "drop the set-uid bit"}
GETTY = {"check": "console.getty-vt", "severity": "low", "title": "a login on a VT",
         "detail": "getty@tty1.service\n\tenabled", "advice": "disable it"}
DEBUG = {"check": "fuse.debug", "severity": "high", "title": "the debug port is open",
         "detail": "debug_disable fuse not burnt", "advice": "burn the fuse"}


def batch() -> str:
    return secrets.token_hex(16)


def post(fleet: Fleet, serial: str, findings: list[dict[str, Any]], *, at: float | None = None,
         batch_id: str | None = None, status: int = 200) -> dict[str, Any]:
    body = {"batch": batch_id or batch(), "at": time.time() if at is None else at,
            "findings": findings}
    with fleet.gateway(serial) as gw:
        answer = gw.post("/v1/gateway/audit", json=body)
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def listed(setup: Setup, who: str = "hotels/eyes", query: str = "", status: int = 200
           ) -> dict[str, Any]:
    with setup.as_(who) as client:
        answer = client.get("/v1/findings" + query)
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def alert_kinds(setup: Setup, who: str = "hotels/eyes") -> list[str]:
    with setup.as_(who) as client:
        return sorted(a["kind"] for a in client.get("/v1/alerts").json())


def count(fleet: Fleet, model: type) -> int:
    with fleet.server.state.db.transaction() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def monitor_of(fleet: Fleet, serial: str) -> GatewayMonitor | None:
    with fleet.server.state.db.transaction() as session:
        gateway_id = session.execute(select(Gateway.id).where(Gateway.serial == serial)
                                     ).scalar_one()
        row = session.get(GatewayMonitor, gateway_id)
        if row is not None:
            session.expunge(row)
        return row


def test_a_report_replaces_the_gateways_set(fleet: Fleet) -> None:
    setup = prepare(fleet)
    first, started = batch(), time.time() - 600
    assert monitor_of(fleet, "gw-1") is None
    answer = post(fleet, "gw-1", [ROOT_LOGIN, SETUID, GETTY], batch_id=first, at=started)
    assert answer == {"batch": first, "stored": True, "findings": 3, "new": 3, "fixed": 0}
    monitor = monitor_of(fleet, "gw-1")
    assert monitor is not None and monitor.cohort == "ew-gw1"
    assert monitor.audit_at is not None
    assert abs(aware(monitor.audit_at).timestamp() - started) < 0.01
    found = listed(setup, query="?source=gateway")
    assert found["summary"] == {"high": 1, "medium": 1, "low": 1, "total": 3}
    assert [(f["check"], f["severity"], f["source"], f["gateway"]) for f in found["findings"]
            ] == [("ssh.root-login", "high", "gateway", "gw-1"),
                  ("files.setuid", "medium", "gateway", "gw-1"),
                  ("console.getty-vt", "low", "gateway", "gw-1")]
    assert found["findings"][2]["detail"] == GETTY["detail"]
    assert found["findings"][0]["advice"] == ROOT_LOGIN["advice"]
    setuid_first_seen = found["findings"][1]["first_seen"]
    assert alert_kinds(setup) == ["audit.ssh.root-login"]
    # the same batch again (delivery is at least once): stored once, no second alert
    assert post(fleet, "gw-1", [ROOT_LOGIN], batch_id=first) == {
        "batch": first, "stored": False, "reason": "duplicate"}
    assert count(fleet, AuditFinding) == 3 and alert_kinds(setup) == ["audit.ssh.root-login"]
    # the next audit: root login and the getty fixed, setuid still there (reworded), the
    # debug port newly found (twice in the report: one finding)
    second = post(fleet, "gw-1", [{**SETUID, "title": "set-uid program"}, DEBUG, DEBUG],
                  at=started + 60)
    assert {k: second[k] for k in ("stored", "findings", "new", "fixed")} == {
        "stored": True, "findings": 2, "new": 1, "fixed": 2}
    now = listed(setup, query="?source=gateway")["findings"]
    assert [(f["check"], f["title"]) for f in now] == [
        ("fuse.debug", "the debug port is open"), ("files.setuid", "set-uid program")]
    assert now[1]["first_seen"] == setuid_first_seen  # still the same finding
    assert now[1]["last_seen"] != setuid_first_seen
    assert alert_kinds(setup) == ["audit.fuse.debug", "audit.ssh.root-login"]
    # an older report arriving late (after a spool) changes nothing
    late = post(fleet, "gw-1", [GETTY], at=started + 30)
    assert late["stored"] is False and "older" in late["reason"]
    assert len(listed(setup, query="?source=gateway")["findings"]) == 2
    # gw-2's set is its own; an empty report: all fixed
    post(fleet, "gw-2", [GETTY])
    assert post(fleet, "gw-1", [], at=started + 120)["fixed"] == 2
    rest = listed(setup, query="?source=gateway")["findings"]
    assert [(f["gateway"], f["check"]) for f in rest] == [("gw-2", "console.getty-vt")]
    assert count(fleet, IngestReceipt) == 5  # the duplicate did not count


def test_filters_and_the_summary(fleet: Fleet) -> None:
    setup = prepare(fleet)
    post(fleet, "gw-1", [ROOT_LOGIN, SETUID])
    post(fleet, "gw-2", [GETTY])
    high = listed(setup, query="?severity=high")
    assert [f["check"] for f in high["findings"]] == ["ssh.root-login"]
    assert high["summary"]["total"] == 3  # the summary is of every severity
    assert [f["check"] for f in listed(setup, query="?gateway=gw-2")["findings"]] == [
        "console.getty-vt"]
    assert listed(setup, query="?source=fleet")["findings"] == []  # a healthy fleet
    limited = listed(setup, query="?limit=1")
    assert len(limited["findings"]) == 1 and limited["truncated"] is True
    for bad in ("?severity=critical", "?source=both", "?gateway=../x", "?limit=0",
                "?expiring_within=0"):
        listed(setup, query=bad, status=422)
    listed(setup, query="?gateway=gw-9", status=404)


BAD: list[tuple[str, Any]] = [
    ("severity", "critical"), ("severity", "HIGH"), ("check", "Bad Check"), ("check", ""),
    ("check", "x" * 65), ("title", ""), ("title", "x" * 257), ("title", "two\nlines"),
    ("detail", "x" * 4097), ("advice", "nul\x00byte"), ("advice", "bell\x07"),
    ("detail", "half a pair \ud800"), ("detail", 7), ("colour", "red")]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}-{i}" for i, (f, _) in
                                                       enumerate(BAD)])
def test_a_malformed_report_is_422_and_stores_nothing(fleet: Fleet, field: str,
                                                      value: Any) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    same = batch()
    body = {"batch": same, "at": time.time(), "findings": [ROOT_LOGIN, {**SETUID,
                                                                          field: value}]}
    with fleet.gateway("gw-1") as gw:  # escaped as Python's json does (httpx would refuse)
        answer = gw.post("/v1/gateway/audit", content=json.dumps(body),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"].startswith("invalid request")
    assert count(fleet, AuditFinding) == 0 and count(fleet, IngestReceipt) == 0
    assert monitor_of(fleet, "gw-1") is None and alert_kinds(setup) == []
    assert post(fleet, "gw-1", [ROOT_LOGIN], batch_id=same)["stored"] is True  # not taken


@pytest.mark.parametrize("body", [
    {"batch": "ABCDEF" * 5 + "AB", "at": 1.0, "findings": []},
    {"batch": "abc", "at": 1.0, "findings": []},
    {"batch": "0" * 32, "at": -1, "findings": []},
    {"batch": "0" * 32, "at": "now", "findings": []},
    {"batch": "0" * 32, "at": 1e300, "findings": []},
    {"batch": "0" * 32, "findings": []},
    {"batch": "0" * 32, "at": 1.0, "findings": [ROOT_LOGIN] * 501},
    {"batch": "0" * 32, "at": 1.0, "findings": {}},
    {"batch": "0" * 32, "at": 1.0, "findings": [], "extra": 1}])
def test_malformed_envelopes_are_422(fleet: Fleet, body: dict[str, Any]) -> None:
    prepare(fleet, enrol=("gw-1",))
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/audit", json=body).status_code == 422
    assert count(fleet, IngestReceipt) == 0 and count(fleet, AuditFinding) == 0


def test_the_largest_report_is_taken(fleet: Fleet) -> None:
    prepare(fleet, enrol=("gw-1",))
    many = [{**SETUID, "detail": f"/usr/bin/p{i:04d} " + "d" * 4000, "advice": "a" * 4096,
             "title": "t" * 256} for i in range(500)]
    assert post(fleet, "gw-1", many)["findings"] == 500  # about 4.3 MB


def test_tenants_see_only_their_own_findings(fleet: Fleet) -> None:
    setup = prepare(fleet)
    post(fleet, "gw-1", [ROOT_LOGIN])
    other = listed(setup, who="other/ops")
    assert other["findings"] == [] and other["summary"]["total"] == 0
    listed(setup, who="other/ops", query="?gateway=gw-1", status=404)
    assert listed(setup, who="platform")["findings"] == []  # the unassigned pool's only
    assert alert_kinds(setup, "other/ops") == []
    with fleet.operator(setup.tokens["hotels/ops"]) as ops:  # a token is no certificate
        refused = ops.post("/v1/gateway/audit", json={"batch": batch(), "at": 1.0,
                                                      "findings": []})
    assert refused.status_code == 401 and "factory certificate" in refused.text
    with fleet.operator(None) as anonymous:
        assert anonymous.get("/v1/findings").status_code == 401


def test_fleet_findings_through_the_api(fleet: Fleet) -> None:
    """gw-1 runs 1.0.0 while 1.1.0 (a security fix) is on stable; gw-2's certificate
    is used by two devices (their boot ids alternate)."""
    setup = prepare(fleet)
    setup.publish(entry("1.0.0"), entry("1.1.0", security_version=2))
    boots = ("ab" * 16, "cd" * 16, "ab" * 16)
    for serial, boot_ids in (("gw-1", boots[:1]), ("gw-2", boots)):
        for boot_id in boot_ids:
            with fleet.gateway(serial) as gw:
                assert gw.post("/v1/gateway/heartbeat", json={
                    "slot": "a", "boot_id": boot_id,
                    "versions": {"rootfs": "1.0.0" if serial == "gw-1" else "1.1.0"}}
                ).is_success
    fleet_only = listed(setup, query="?source=fleet")
    assert [(f["gateway"], f["check"], f["severity"]) for f in fleet_only["findings"]] == [
        ("gw-1", "patches.behind", "high"), ("gw-2", "identity.cloned", "high")]
    behind, cloned = fleet_only["findings"]
    assert "runs 1.0.0 (security version 1)" in behind["detail"]
    assert "1.1.0 is offered to it" in behind["advice"]
    assert "edgeward fleet revoke gw-2" in cloned["advice"]
    assert behind["source"] == "fleet" and behind["first_seen"] is None
    assert listed(setup, who="other/ops", query="?source=fleet")["findings"] == []


def test_a_revoked_gateway_that_still_knocks(fleet: Fleet) -> None:
    setup = prepare(fleet)
    post(fleet, "gw-1", [ROOT_LOGIN])
    with setup.as_("hotels/ops") as ops:
        assert ops.post("/v1/gateways/gw-1/revoke").is_success
    assert listed(setup, query="?source=fleet")["findings"] == []  # revoked, not seen since
    refused = post(fleet, "gw-1", [SETUID], status=403)
    assert "revoked" in refused["error"]
    found = listed(setup)["findings"]
    assert [(f["gateway"], f["check"], f["source"]) for f in found] == [
        ("gw-1", "certificate.revoked-seen", "fleet")]  # its own report is no longer shown
    assert "revoked-seen" in alert_kinds(setup)
    with fleet.server.state.db.transaction() as session:
        last_seen = session.execute(select(Gateway.last_seen_at)
                                    .where(Gateway.serial == "gw-1")).scalar_one()
    assert aware(last_seen) > dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    with fleet.gateway("gw-2") as gw:  # a gateway in good standing is not noted
        assert gw.post("/v1/gateway/audit", json={"batch": batch(), "at": time.time(),
                                                  "findings": []}).is_success
    assert alert_kinds(setup).count("revoked-seen") == 1
