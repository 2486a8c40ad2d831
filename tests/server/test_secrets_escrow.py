"""Recovery keys and per-device credentials over real HTTPS (SQLite and PostgreSQL):
gateways hand them in, tenant admins alone read them back, every read and every refused
attempt is audited, values never appear in listings or the audit log."""

from __future__ import annotations

import json
from typing import Any

from tests.server.harness import Fleet
from tests.server.test_secrets_api import Tenants, tenants

RECOVERY = "rk-5J7Q-2M9X-8C4V-1B6N-3Z0L"
RECOVERY_2 = "rk-NEW1-NEW2-NEW3-NEW4-NEW5"


def escrow(fleet: Fleet, serial: str, key: str, status: int = 200) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.post("/v1/gateway/recovery-key", json={"recovery_key": key})
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def fetch(t: Tenants, who: str, serial: str) -> tuple[int, dict[str, Any]]:
    with t.as_(who) as client:
        answer = client.get(f"/v1/gateways/{serial}/recovery-key")
    return answer.status_code, dict(answer.json())


def report(fleet: Fleet, serial: str, app: str, name: str, value: str) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.post("/v1/gateway/credentials", json={"app": app, "name": name,
                                                          "value": value})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_recovery_key_escrow_and_fetch(fleet: Fleet) -> None:
    t = tenants(fleet, assign=())
    # escrowed while the gateway is in the unassigned pool: the platform admin may fetch it
    assert escrow(fleet, "gw-1", RECOVERY) == {"escrowed": True}
    assert escrow(fleet, "gw-1", RECOVERY) == {"escrowed": True}  # idempotent
    status, shown = fetch(t, "platform", "gw-1")
    assert status == 200 and shown["recovery_key"] == RECOVERY and shown["gateway"] == "gw-1"
    # handed to hotels: still fetchable, now by hotels' admin only
    with fleet.admin() as admin:
        assert admin.post("/v1/gateways/gw-1/assign", json={"tenant": "hotels"}).is_success
    status, shown = fetch(t, "hotels/ops", "gw-1")
    assert status == 200 and shown["recovery_key"] == RECOVERY
    assert fetch(t, "hotels/runner", "gw-1")[0] == 403  # an operator
    assert fetch(t, "hotels/eyes", "gw-1")[0] == 403  # a viewer
    assert fetch(t, "other/ops", "gw-1")[0] == 404  # another tenant's admin: not even seen
    assert fetch(t, "platform", "gw-1")[0] == 404  # no longer in the unassigned pool
    assert fetch(t, "hotels/ops", "gw-2")[0] == 404  # not hotels'
    # a different key replaces it (audited)
    escrow(fleet, "gw-1", RECOVERY_2)
    assert fetch(t, "hotels/ops", "gw-1")[1]["recovery_key"] == RECOVERY_2
    # gw-2 escrowed nothing
    with fleet.admin() as admin:
        assert admin.post("/v1/gateways/gw-2/assign", json={"tenant": "hotels"}).is_success
    status, shown = fetch(t, "hotels/ops", "gw-2")
    assert status == 404 and "no recovery key" in shown["error"]
    hotels = t.audit("hotels/ops")
    fetched = [(e["actor"], e["action"]) for e in hotels if e["target"] == "gw-1"
               and e["action"].startswith("recovery-key")]
    assert fetched == [  # newest first
        ("hotels/ops", "recovery-key.fetch"),
        ("gateway/gw-1", "recovery-key.replace"),
        ("platform/admin", "recovery-key.fetch-refused"),
        ("other/ops", "recovery-key.fetch-refused"),  # the holder learns of the attempt
        ("hotels/eyes", "recovery-key.fetch-refused"),
        ("hotels/runner", "recovery-key.fetch-refused"),
        ("hotels/ops", "recovery-key.fetch")]
    assert any("may not" in e["detail"]["reason"] for e in hotels
               if e["actor"] == "hotels/eyes")
    other = [(e["action"], e["target"]) for e in t.audit("other/ops")]
    assert ("recovery-key.fetch-refused", "gw-1") in other  # the asker's own log too
    pool = [(e["actor"], e["action"]) for e in t.audit("platform") if e["target"] == "gw-1"]
    assert ("gateway/gw-1", "recovery-key.escrow") in pool
    assert ("platform/admin", "recovery-key.fetch") in pool
    everything = json.dumps([hotels, t.audit("other/ops"), t.audit("platform")])
    assert RECOVERY not in everything and RECOVERY_2 not in everything


def test_recovery_key_requests_are_checked(fleet: Fleet) -> None:
    t = tenants(fleet, attest=())
    for bad in ({}, {"recovery_key": ""}, {"recovery_key": "a\nb"}, {"recovery_key": 7},
                {"recovery_key": "k" * 4097}, {"recovery_key": "k", "x": 1}):
        with fleet.gateway("gw-1") as gw:
            answer = gw.post("/v1/gateway/recovery-key", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
        assert set(answer.json()) == {"error"}
    with t.as_("hotels/ops") as ops:  # only gateways escrow, by their certificate
        assert ops.post("/v1/gateway/recovery-key",
                        json={"recovery_key": RECOVERY}).status_code == 401
        assert ops.get("/v1/gateways/bad%20serial/recovery-key").status_code == 422
    with fleet.operator(None) as nobody:
        assert nobody.get("/v1/gateways/gw-1/recovery-key").status_code == 401


def test_per_device_credentials(fleet: Fleet) -> None:
    t = tenants(fleet)
    assert report(fleet, "gw-1", "minibar", "mqtt-password", "pw-gw1-A") == {
        "app": "minibar", "name": "mqtt-password", "outcome": "stored"}
    assert report(fleet, "gw-1", "minibar", "mqtt-password", "pw-gw1-A")["outcome"] == \
        "unchanged"
    report(fleet, "gw-2", "minibar", "mqtt-password", "pw-gw2-A")
    with t.as_("hotels/eyes") as eyes:  # a viewer lists names, never values
        listed = eyes.get("/v1/gateways/gw-1/credentials")
        assert listed.status_code == 200
        assert [(c["app"], c["name"]) for c in listed.json()] == [("minibar", "mqtt-password")]
        assert set(listed.json()[0]) == {"app", "name", "reported_at"}
        assert "pw-gw1" not in listed.text
        assert eyes.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password"
                        ).status_code == 403
    with t.as_("hotels/runner") as runner:
        assert runner.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password"
                          ).status_code == 403
    with t.as_("other/ops") as other:
        assert other.get("/v1/gateways/gw-1/credentials").status_code == 404
        assert other.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password"
                         ).status_code == 404
    with t.as_("hotels/ops") as ops:
        shown = ops.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password").json()
        assert shown["value"] == "pw-gw1-A" and shown["gateway"] == "gw-1"
        # each gateway's own: gw-2's is another value
        assert ops.get("/v1/gateways/gw-2/credentials/minibar/mqtt-password"
                       ).json()["value"] == "pw-gw2-A"
        missing = ops.get("/v1/gateways/gw-1/credentials/minibar/other")
        assert missing.status_code == 404 and "no credential" in missing.json()["error"]
    assert report(fleet, "gw-1", "minibar", "mqtt-password", "pw-gw1-B")["outcome"] == \
        "replaced"
    with t.as_("hotels/ops") as ops:
        assert ops.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password"
                       ).json()["value"] == "pw-gw1-B"
    log = t.audit("hotels/ops")
    mine = [(e["actor"], e["action"]) for e in log if e["target"] == "gw-1/minibar/mqtt-password"]
    assert mine == [
        ("hotels/ops", "credential.reveal"), ("gateway/gw-1", "credential.replace"),
        ("hotels/ops", "credential.reveal"), ("other/ops", "credential.reveal-refused"),
        ("hotels/runner", "credential.reveal-refused"),
        ("hotels/eyes", "credential.reveal-refused"), ("gateway/gw-1", "credential.report")]
    assert "pw-gw" not in json.dumps(log)


def test_credentials_only_from_an_attested_gateway(fleet: Fleet) -> None:
    t = tenants(fleet, attest=("gw-1",))
    with fleet.gateway("gw-2") as gw:  # never attested
        answer = gw.post("/v1/gateway/credentials", json={
            "app": "minibar", "name": "mqtt-password", "value": "from-an-unverified-gateway"})
    assert answer.status_code == 403 and "refused a credential report" in answer.json()["error"]
    with t.as_("hotels/ops") as ops:
        assert ops.get("/v1/gateways/gw-2/credentials").json() == []
    assert ("gateway/gw-2", "gateway.credential-refused") in {
        (e["actor"], e["action"]) for e in t.audit("hotels/ops")}
    assert escrow(fleet, "gw-2", RECOVERY) == {"escrowed": True}  # escrow needs enrolment only


def test_credentials_stay_with_the_tenant_that_held_the_gateway(fleet: Fleet) -> None:
    t = tenants(fleet, assign=())
    report(fleet, "gw-1", "minibar", "mqtt-password", "made-in-the-pool")
    with t.as_("platform") as admin:  # unassigned: the platform admin's
        assert admin.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password"
                         ).json()["value"] == "made-in-the-pool"
        assert admin.post("/v1/gateways/gw-1/assign", json={"tenant": "hotels"}).is_success
    with t.as_("hotels/ops") as ops:  # a credential made before goes not along ...
        assert ops.get("/v1/gateways/gw-1/credentials").json() == []
    report(fleet, "gw-1", "minibar", "mqtt-password", "made-in-the-pool")
    with t.as_("hotels/ops") as ops:  # ... until the gateway reports it again
        assert ops.get("/v1/gateways/gw-1/credentials/minibar/mqtt-password"
                       ).json()["value"] == "made-in-the-pool"
    for bad in ({"app": "minibar", "name": "x"}, {"app": "Minibar", "name": "x", "value": "v"},
                {"app": "minibar", "name": "x", "value": ""},
                {"app": "minibar", "name": "x", "value": "v" * 70000}):
        with fleet.gateway("gw-1") as gw:
            answer = gw.post("/v1/gateway/credentials", json=bad)
        assert answer.status_code == 422 and set(answer.json()) == {"error"}
