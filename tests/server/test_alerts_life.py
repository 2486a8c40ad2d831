"""An alert's life over real HTTPS: listed with its fields and filters, acknowledged,
judged, resolved; each change in the audit log; viewers read only; tenants apart."""

from __future__ import annotations

from typing import Any

from tests.server.alerting import raise_alert
from tests.server.harness import Fleet
from tests.server.test_updates_api import Setup, prepare


def with_operator(fleet: Fleet) -> Setup:
    """``prepare``'s tenants, and an operator 'hands' in hotels."""
    setup = prepare(fleet)
    with fleet.admin() as admin:
        admin.post("/v1/users", json={"name": "hands", "role": "operator", "tenant": "hotels"})
        setup.tokens["hotels/hands"] = admin.post(
            "/v1/tokens", json={"user": "hands", "tenant": "hotels"}).json()["token"]
    return setup


def listed(setup: Setup, who: str, query: str = "") -> list[dict[str, Any]]:
    with setup.as_(who) as client:
        answer = client.get("/v1/alerts" + query)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_an_alert_is_acknowledged_judged_and_resolved(fleet: Fleet) -> None:
    setup = with_operator(fleet)
    first = raise_alert(fleet, "gw-1", "cpu-anomaly", app="minibar", severity="high")
    second = raise_alert(fleet, "gw-2", "new-remote-host", severity="low")
    (newest, oldest) = listed(setup, "hotels/eyes")
    assert newest["id"] == second and oldest["id"] == first
    assert {k: oldest[k] for k in ("gateway", "kind", "app", "severity", "status", "verdict",
                                   "source", "evidence", "acked_by", "acked_at")} == {
        "gateway": "gw-1", "kind": "cpu-anomaly", "app": "minibar", "severity": "high",
        "status": "open", "verdict": None, "source": "detector",
        "evidence": {"cpu": 0.93, "z": 7.5}, "acked_by": None, "acked_at": None}
    assert oldest["detail"] == "cpu-anomaly on gw-1" and oldest["at"]

    with setup.as_("hotels/eyes") as viewer:  # viewers read, never change
        for step in ("ack", "resolve"):
            denied = viewer.post(f"/v1/alerts/{first}/{step}")
            assert denied.status_code == 403 and "alert:manage" in denied.json()["error"]
        assert viewer.post(f"/v1/alerts/{first}/verdict",
                           json={"verdict": "false-positive"}).status_code == 403
    with setup.as_("other/ops") as other:  # another tenant's alert does not exist
        assert other.post(f"/v1/alerts/{first}/ack").status_code == 404
        assert other.post(f"/v1/alerts/{first}/verdict",
                          json={"verdict": "true-positive"}).status_code == 404
        assert other.get("/v1/alerts").json() == []

    with setup.as_("hotels/hands") as hands:
        acked = hands.post(f"/v1/alerts/{first}/ack").json()
        assert acked["status"] == "acked" and acked["acked_by"] == "hotels/hands"
        assert acked["acked_at"] is not None
        assert hands.post(f"/v1/alerts/{first}/ack").json() == acked  # a double click
        assert hands.post(f"/v1/alerts/{first}/verdict",
                          json={"verdict": "maybe"}).status_code == 422
        assert hands.post(f"/v1/alerts/{first}/verdict", json={}).status_code == 422
        judged = hands.post(f"/v1/alerts/{first}/verdict", json={"verdict": "false-positive"})
        assert judged.json()["verdict"] == "false-positive"
        resolved = hands.post(f"/v1/alerts/{first}/resolve").json()
        assert resolved["status"] == "resolved" and resolved["verdict"] == "false-positive"
        late = hands.post(f"/v1/alerts/{first}/ack")
        assert late.status_code == 409 and "resolved" in late.json()["error"]
        assert hands.post(f"/v1/alerts/{first}/resolve").json()["status"] == "resolved"
        # judging an open alert acknowledges it on the way
        judged = hands.post(f"/v1/alerts/{second}/verdict", json={"verdict": "true-positive"})
        assert judged.json()["status"] == "acked" and judged.json()["verdict"] == "true-positive"
        assert hands.post("/v1/alerts/999999/ack").status_code == 404
        assert hands.post("/v1/alerts/0/ack").status_code == 422

    assert [a["id"] for a in listed(setup, "hotels/eyes", "?status=resolved")] == [first]
    assert [a["id"] for a in listed(setup, "hotels/eyes", "?status=acked")] == [second]
    assert listed(setup, "hotels/eyes", "?status=open") == []
    assert [a["id"] for a in listed(setup, "hotels/eyes", "?severity=low")] == [second]
    assert [a["id"] for a in listed(setup, "hotels/eyes", "?gateway=gw-1")] == [first]
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.get("/v1/alerts?status=closed").status_code == 422
        assert viewer.get("/v1/alerts?gateway=../x").status_code == 422

    with setup.as_("hotels/ops") as admin:
        log = admin.get("/v1/audit").json()
    changes = [(e["actor"], e["action"], e["target"], e["detail"]) for e in log
               if e["action"].startswith("alert.")]
    assert changes == [  # newest first; the repeated ack and resolve recorded nothing
        ("hotels/hands", "alert.verdict", f"gw-2/alert/{second}",
         {"kind": "new-remote-host", "verdict": "true-positive", "previous": None}),
        ("hotels/hands", "alert.resolve", f"gw-1/alert/{first}",
         {"kind": "cpu-anomaly", "verdict": "false-positive"}),
        ("hotels/hands", "alert.verdict", f"gw-1/alert/{first}",
         {"kind": "cpu-anomaly", "verdict": "false-positive", "previous": None}),
        ("hotels/hands", "alert.ack", f"gw-1/alert/{first}", {"kind": "cpu-anomaly"})]
    with setup.as_("other/ops") as other:
        assert not [e for e in other.get("/v1/audit").json()
                    if e["action"].startswith("alert.")]


def test_the_unassigned_pool_is_the_platform_admins(fleet: Fleet) -> None:
    assert fleet.enrol("gw-1").is_success
    alert_id = raise_alert(fleet, "gw-1", "identity-conflict")
    with fleet.admin() as platform:
        assert [a["id"] for a in platform.get("/v1/alerts").json()] == [alert_id]
        assert platform.post(f"/v1/alerts/{alert_id}/ack").json()["acked_by"] == \
            "platform/admin"
        platform.post("/v1/tenants", json={"name": "hotels"})
        platform.post("/v1/users", json={"name": "ops", "role": "admin", "tenant": "hotels"})
        token = platform.post("/v1/tokens", json={"user": "ops", "tenant": "hotels"}
                              ).json()["token"]
    with fleet.operator(token) as hotels:
        assert hotels.get("/v1/alerts").json() == []
        assert hotels.post(f"/v1/alerts/{alert_id}/resolve").status_code == 404
