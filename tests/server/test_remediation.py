"""Remediation over real HTTPS: an operator orders, the gateway fetches its queue with its
client certificate and reports, the operator sees how it went; quarantine is kept as the
gateway's state; a gateway touches only its own actions; every order is audited."""

from __future__ import annotations

from typing import Any

from tests.server.alerting import raise_alert
from tests.server.harness import Fleet
from tests.server.test_alerts_life import with_operator


def fetch(fleet: Fleet, serial: str) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.get("/v1/gateway/actions")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_an_order_reaches_the_gateway_and_its_report_the_operator(fleet: Fleet) -> None:
    setup = with_operator(fleet)
    alert_id = raise_alert(fleet, "gw-1", "cpu-anomaly", app="minibar")
    with setup.as_("hotels/hands") as hands:
        ordered = hands.post("/v1/gateways/gw-1/actions", json={
            "action": "stop-app", "app": "minibar", "alert": alert_id})
        assert ordered.status_code == 201, ordered.text
        action = ordered.json()
        assert {k: action[k] for k in ("gateway", "action", "app", "alert", "status",
                                       "requested_by", "delivered_at", "done_at")} == {
            "gateway": "gw-1", "action": "stop-app", "app": "minibar", "alert": alert_id,
            "status": "pending", "requested_by": "hotels/hands", "delivered_at": None,
            "done_at": None}
        alert = hands.get("/v1/alerts").json()[0]
        assert alert["status"] == "acked"  # answering an alert acknowledges it

    assert fetch(fleet, "gw-2") == {"actions": [], "quarantined": False}
    queued = {"actions": [{"id": action["id"], "action": "stop-app", "app": "minibar"}],
              "quarantined": False}
    assert fetch(fleet, "gw-1") == queued
    assert fetch(fleet, "gw-1") == queued  # again until reported: a restarted agent misses none
    with setup.as_("hotels/eyes") as viewer:
        (seen,) = viewer.get("/v1/gateways/gw-1/actions").json()
    assert seen["status"] == "delivered" and seen["delivered_at"] is not None

    path = f"/v1/gateway/actions/{action['id']}"
    with fleet.gateway("gw-2") as intruder:  # not its action: not even there
        refused = intruder.post(path, json={"status": "done", "result": "stopped"})
        assert refused.status_code == 404
    with setup.as_("hotels/hands") as hands:  # an operator token is not a gateway
        assert hands.post(path, json={"status": "done"}).status_code == 401
    with fleet.gateway("gw-1") as gw:
        assert gw.post(path, json={"status": "finished"}).status_code == 422
        assert gw.post(path, json={"status": "done", "result": "x" * 301}).status_code == 422
        assert gw.post(path, json={"status": "done", "extra": 1}).status_code == 422
        done = gw.post(path, json={"status": "done", "result": "minibar stopped"})
        assert done.json() == {"id": action["id"], "status": "done"}
        assert gw.post(path, json={"status": "done", "result": "again"}).is_success
        late = gw.post(path, json={"status": "failed"})
        assert late.status_code == 409
        assert gw.post("/v1/gateway/actions/999999", json={"status": "done"}
                       ).status_code == 404
    assert fetch(fleet, "gw-1") == {"actions": [], "quarantined": False}
    with setup.as_("hotels/eyes") as viewer:
        (seen,) = viewer.get("/v1/gateways/gw-1/actions").json()
    assert (seen["status"], seen["result"]) == ("done", "minibar stopped")
    assert seen["done_at"] is not None


def test_orders_are_checked_and_kept_to_the_tenant(fleet: Fleet) -> None:
    setup = with_operator(fleet)
    on_gw2 = raise_alert(fleet, "gw-2", "beacon", app="hvac")
    with setup.as_("hotels/hands") as hands:
        for body, status in (
                ({"action": "stop-app"}, 400),  # which app?
                ({"action": "cut-network", "app": "Bad App"}, 422),
                ({"action": "quarantine", "app": "minibar"}, 400),  # the whole gateway
                ({"action": "audit", "app": "minibar"}, 400),
                ({"action": "reboot"}, 422),
                ({"action": "stop-app", "app": "minibar", "alert": on_gw2}, 400),
                ({"action": "stop-app", "app": "minibar", "alert": 999999}, 404),
                ({"action": "release", "colour": "red"}, 422)):
            answer = hands.post("/v1/gateways/gw-1/actions", json=body)
            assert answer.status_code == status, (body, answer.text)
        assert hands.post("/v1/gateways/gw-9/actions", json={"action": "quarantine"}
                          ).status_code == 404
        assert hands.get("/v1/gateways/gw-1/actions").json() == []
    with setup.as_("hotels/eyes") as viewer:
        denied = viewer.post("/v1/gateways/gw-1/actions", json={"action": "quarantine"})
        assert denied.status_code == 403 and "gateway:remediate" in denied.json()["error"]
    with setup.as_("other/ops") as other:
        assert other.post("/v1/gateways/gw-1/actions", json={"action": "quarantine"}
                          ).status_code == 404
        assert other.get("/v1/gateways/gw-1/actions").status_code == 404
    assert fetch(fleet, "gw-1") == {"actions": [], "quarantined": False}
    with fleet.operator(None) as nobody:
        assert nobody.get("/v1/gateway/actions").status_code == 401  # no client certificate


def test_quarantine_is_the_gateways_state_until_released(fleet: Fleet) -> None:
    setup = with_operator(fleet)
    with setup.as_("hotels/ops") as admin:
        ordered = admin.post("/v1/gateways/gw-1/actions", json={"action": "quarantine"})
        assert ordered.status_code == 201 and ordered.json()["app"] == ""
        assert admin.get("/v1/gateways/gw-1").json()["quarantined"] is True
        assert {g["serial"]: g["quarantined"] for g in admin.get("/v1/gateways").json()} == {
            "gw-1": True, "gw-2": False}
    answer = fetch(fleet, "gw-1")
    assert answer["quarantined"] is True
    assert [a["action"] for a in answer["actions"]] == ["quarantine"]
    with setup.as_("hotels/hands") as hands:
        hands.post("/v1/gateways/gw-1/actions", json={"action": "cut-network", "app": "hvac"})
        hands.post("/v1/gateways/gw-1/actions", json={"action": "audit"})
        assert hands.get("/v1/gateways/gw-1").json()["quarantined"] is True  # still
        hands.post("/v1/gateways/gw-1/actions", json={"action": "release"})
        assert hands.get("/v1/gateways/gw-1").json()["quarantined"] is False
        assert [a["action"] for a in hands.get("/v1/gateways/gw-1/actions").json()] == [
            "release", "audit", "cut-network", "quarantine"]
    answer = fetch(fleet, "gw-1")
    assert answer["quarantined"] is False
    assert [(a["action"], a["app"]) for a in answer["actions"]] == [  # oldest first
        ("quarantine", ""), ("cut-network", "hvac"), ("audit", ""), ("release", "")]
    with setup.as_("hotels/ops") as admin:
        log = [(e["actor"], e["action"], e["target"]) for e in admin.get("/v1/audit").json()
               if e["action"].startswith("gateway.") and e["action"] != "gateway.assign"]
    assert log == [("hotels/hands", "gateway.release", "gw-1"),
                   ("hotels/hands", "gateway.audit", "gw-1"),
                   ("hotels/hands", "gateway.cut-network", "gw-1/hvac"),
                   ("hotels/ops", "gateway.quarantine", "gw-1")]
    with fleet.admin() as platform:  # its revocation ends its queue
        assert platform.get("/v1/gateways").json() == []
    with setup.as_("hotels/ops") as admin:
        assert admin.post("/v1/gateways/gw-2/revoke").is_success
        refused = admin.post("/v1/gateways/gw-2/actions", json={"action": "quarantine"})
        assert refused.status_code == 409 and "revoked" in refused.json()["error"]
