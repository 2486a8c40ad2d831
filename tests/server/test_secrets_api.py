"""Secrets over real HTTPS on SQLite and PostgreSQL: tenant admins set, rotate and revoke
them, listings never carry a value, tenants are kept apart, a group's value overrides the
tenant-wide one, and only a gateway whose last attestation is good receives its own,
sealed to its identity key."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from edgeward.device import identity
from edgeward.errors import IntegrityError
from edgeward.server.services import secretstore
from edgeward.trust import sealing
from edgeward.trust.secretbox import secret_info
from tests.server.harness import Fleet, attest_once

USERS = {"hotels": (("ops", "admin"), ("runner", "operator"), ("eyes", "viewer")),
         "other": (("ops", "admin"), ("eyes", "viewer"))}


@dataclass
class Tenants:
    fleet: Fleet
    tokens: dict[str, str]

    def as_(self, who: str) -> httpx.Client:
        return self.fleet.admin() if who == "platform" else self.fleet.operator(self.tokens[who])

    def put(self, who: str, app: str, name: str, value: str, group: str | None = None,
            status: int = 200) -> dict[str, Any]:
        with self.as_(who) as client:
            answer = client.put(f"/v1/secrets/{app}/{name}",
                                json={"value": value, "group": group})
        assert answer.status_code == status, answer.text
        return dict(answer.json())

    def listed(self, who: str, query: str = "") -> list[dict[str, Any]]:
        with self.as_(who) as client:
            answer = client.get(f"/v1/secrets{query}")
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def delivered(self, serial: str) -> dict[str, tuple[int, str]]:
        """What the gateway receives, unsealed with its own identity key."""
        with self.fleet.gateway(serial) as gw:
            answer = gw.get("/v1/gateway/secrets")
        assert answer.status_code == 200, answer.text
        key = identity.identity_key(self.fleet.boards[serial])
        opened = {}
        for s in answer.json()["secrets"]:
            value = sealing.unseal(key, base64.b64decode(s["sealed"]),
                                   secret_info(serial, s["app"], s["name"], s["version"]))
            opened[f"{s['app']}/{s['name']}"] = (s["version"], value.decode())
        return opened

    def audit(self, who: str) -> list[dict[str, Any]]:
        with self.as_(who) as client:
            return list(client.get("/v1/audit?limit=1000").json())


def tenants(fleet: Fleet, attest: tuple[str, ...] = ("gw-1", "gw-2"),
            assign: tuple[str, ...] = ("gw-1", "gw-2")) -> Tenants:
    """Tenants 'hotels' (admin, operator, viewer) and 'other' (admin, viewer); both
    gateways enrolled, ``attest`` attested and ``assign`` handed to hotels."""
    tokens = {}
    for serial in ("gw-1", "gw-2"):
        assert fleet.enrol(serial).is_success
    for serial in attest:
        assert attest_once(fleet, serial)["verdict"] == "attested"
    with fleet.admin() as admin:
        for tenant, users in USERS.items():
            assert admin.post("/v1/tenants", json={"name": tenant}).status_code == 201
            for user, role in users:
                assert admin.post("/v1/users", json={"name": user, "role": role,
                                                     "tenant": tenant}).status_code == 201
                tokens[f"{tenant}/{user}"] = admin.post(
                    "/v1/tokens", json={"user": user, "tenant": tenant}).json()["token"]
        for serial in assign:
            assert admin.post(f"/v1/gateways/{serial}/assign",
                              json={"tenant": "hotels"}).is_success
    return Tenants(fleet, tokens)


def test_set_list_rotate_and_revoke(fleet: Fleet) -> None:
    t = tenants(fleet)
    assert t.put("hotels/ops", "minibar", "mqtt-password", "hunter2-v1") == {
        "app": "minibar", "name": "mqtt-password", "group": None, "version": 1}
    t.put("hotels/ops", "hvac", "api-token", "tok-hvac-1")
    assert t.put("hotels/ops", "minibar", "mqtt-password", "hunter2-v2")["version"] == 2
    listed = t.listed("hotels/eyes")  # a viewer lists names and versions ...
    assert [(s["app"], s["name"], s["group"], s["version"]) for s in listed] == [
        ("hvac", "api-token", None, 1), ("minibar", "mqtt-password", None, 2)]
    assert all(set(s) == {"app", "name", "group", "version", "updated_at"} for s in listed)
    assert [s["name"] for s in t.listed("hotels/eyes", "?app=hvac")] == ["api-token"]
    with t.as_("hotels/eyes") as eyes:
        raw = eyes.get("/v1/secrets").text
    assert "hunter2" not in raw and "tok-hvac" not in raw  # ... never a value
    # only admins set or revoke: a viewer and an operator are refused
    for who in ("hotels/eyes", "hotels/runner"):
        t.put(who, "minibar", "mqtt-password", "evil", status=403)
        with t.as_(who) as client:
            assert client.delete("/v1/secrets/minibar/mqtt-password").status_code == 403
    assert t.delivered("gw-1") == {"minibar/mqtt-password": (2, "hunter2-v2"),
                                   "hvac/api-token": (1, "tok-hvac-1")}
    with t.as_("hotels/ops") as ops:
        gone = ops.delete("/v1/secrets/minibar/mqtt-password")
        assert gone.status_code == 200, gone.text
        assert gone.json() == {"app": "minibar", "name": "mqtt-password", "group": None,
                               "version": 2, "revoked": True}
        again = ops.delete("/v1/secrets/minibar/mqtt-password")
        assert again.status_code == 404 and "no secret" in again.json()["error"]
    assert [s["name"] for s in t.listed("hotels/ops")] == ["api-token"]
    assert t.delivered("gw-1") == {"hvac/api-token": (1, "tok-hvac-1")}  # revoked: gone
    # set again after revocation: the version keeps going up
    assert t.put("hotels/ops", "minibar", "mqtt-password", "hunter2-v3")["version"] == 3
    assert t.delivered("gw-2")["minibar/mqtt-password"] == (3, "hunter2-v3")
    log = [e for e in t.audit("hotels/ops") if e["action"].startswith("secret.")]
    assert [(e["action"], e["target"], e["detail"]) for e in reversed(log)] == [
        ("secret.set", "minibar/mqtt-password", {"group": None, "version": 1}),
        ("secret.set", "hvac/api-token", {"group": None, "version": 1}),
        ("secret.set", "minibar/mqtt-password", {"group": None, "version": 2}),
        ("secret.revoke", "minibar/mqtt-password", {"group": None, "version": 2}),
        ("secret.set", "minibar/mqtt-password", {"group": None, "version": 3})]
    assert all(e["actor"] == "hotels/ops" for e in log)


def test_tenants_are_kept_apart(fleet: Fleet) -> None:
    t = tenants(fleet)
    t.put("hotels/ops", "minibar", "mqtt-password", "hotel-secret")
    assert t.listed("other/ops") == [] and t.listed("other/eyes") == []
    # the same name in another tenant is another secret: it overwrites nothing
    assert t.put("other/ops", "minibar", "mqtt-password", "other-secret")["version"] == 1
    with t.as_("other/ops") as other:
        assert other.delete("/v1/secrets/minibar/mqtt-password?group=lobby").status_code == 404
    assert t.listed("hotels/ops")[0]["version"] == 1
    assert t.delivered("gw-1") == {"minibar/mqtt-password": (1, "hotel-secret")}
    # nor can it name the other tenant's group
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 201
    answer = t.put("other/ops", "minibar", "mqtt-password", "x", group="lobby", status=404)
    assert "no group lobby" in answer["error"]
    assert t.listed("hotels/eyes")[0]["group"] is None
    with t.as_("other/ops") as other:  # revoking its own leaves the hotels' one alone
        assert other.delete("/v1/secrets/minibar/mqtt-password").is_success
    assert t.delivered("gw-1") == {"minibar/mqtt-password": (1, "hotel-secret")}
    # the platform admin sees no tenant's secrets either
    assert t.listed("platform") == []


def test_a_groups_value_overrides_the_tenant_wide_one(fleet: Fleet) -> None:
    t = tenants(fleet)
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 201
        assert ops.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"}).is_success
    t.put("hotels/ops", "minibar", "broker", "tenant-wide")
    t.put("hotels/ops", "minibar", "only-lobby", "lobby-only")
    set_for_group = t.put("hotels/ops", "minibar", "broker", "lobby-value", group="lobby")
    assert set_for_group == {"app": "minibar", "name": "broker", "group": "lobby",
                             "version": 1}
    listed = {(s["name"], s["group"]): s["version"] for s in t.listed("hotels/eyes")}
    assert listed == {("broker", None): 1, ("broker", "lobby"): 1, ("only-lobby", None): 1}
    assert t.delivered("gw-1") == {"minibar/broker": (1, "lobby-value"),
                                   "minibar/only-lobby": (1, "lobby-only")}
    assert t.delivered("gw-2") == {"minibar/broker": (1, "tenant-wide"),
                                   "minibar/only-lobby": (1, "lobby-only")}
    t.put("hotels/ops", "minibar", "broker", "lobby-value-2", group="lobby")
    assert t.delivered("gw-1")["minibar/broker"] == (2, "lobby-value-2")
    with t.as_("hotels/ops") as ops:
        assert ops.delete("/v1/secrets/minibar/broker?group=lobby").is_success
    assert t.delivered("gw-1")["minibar/broker"] == (1, "tenant-wide")  # back to the tenant's


def test_a_gateway_receives_only_its_own_sealed_secrets(fleet: Fleet) -> None:
    t = tenants(fleet, assign=("gw-1",))
    t.put("hotels/ops", "minibar", "mqtt-password", "s3cret-one")
    with fleet.gateway("gw-1") as gw:
        answer = gw.get("/v1/gateway/secrets").json()
    [box] = answer["secrets"]
    assert set(box) == {"app", "name", "version", "sealed"} and "s3cret" not in str(answer)
    sealed = base64.b64decode(box["sealed"])
    own = identity.identity_key(fleet.boards["gw-1"])
    info = secret_info("gw-1", "minibar", "mqtt-password", 1)
    assert sealing.unseal(own, sealed, info) == b"s3cret-one"
    # not on another gateway's key, nor as another version, app or gateway
    for key, wrong in ((identity.identity_key(fleet.boards["gw-2"]), info),
                       (own, secret_info("gw-1", "minibar", "mqtt-password", 2)),
                       (own, secret_info("gw-1", "hvac", "mqtt-password", 1)),
                       (own, secret_info("gw-2", "minibar", "mqtt-password", 1))):
        try:
            sealing.unseal(key, sealed, wrong)
        except IntegrityError as e:
            assert "does not open" in str(e)
        else:
            raise AssertionError("a sealed secret opened where it should not")
    # rotation: a new version and value; revocation: no longer delivered
    t.put("hotels/ops", "minibar", "mqtt-password", "s3cret-two")
    assert t.delivered("gw-1") == {"minibar/mqtt-password": (2, "s3cret-two")}
    with t.as_("hotels/ops") as ops:
        assert ops.delete("/v1/secrets/minibar/mqtt-password").is_success
    assert t.delivered("gw-1") == {}
    # gw-2 is attested but held by no tenant: nothing to receive
    t.put("hotels/ops", "minibar", "mqtt-password", "s3cret-three")
    with fleet.gateway("gw-2") as gw:
        assert gw.get("/v1/gateway/secrets").json() == {"secrets": []}


def test_no_secret_without_a_good_attestation(fleet: Fleet) -> None:
    t = tenants(fleet, attest=("gw-1",))
    t.put("hotels/ops", "minibar", "mqtt-password", "only-for-attested")
    with fleet.gateway("gw-2") as gw:  # never attested: unknown
        refused = gw.get("/v1/gateway/secrets")
        assert refused.status_code == 403, refused.text
        assert set(refused.json()) == {"error"}
        assert "last attestation is unknown" in refused.json()["error"]
        assert "only-for-attested" not in refused.text
        # a quote that fails (a nonce the server never issued) makes it "failed"
        nonce = "00" * 32
        assert gw.post("/v1/gateway/quote", json={"nonce": nonce, "quote": "{}"}).json()[
            "verdict"] == "failed"
        refused = gw.get("/v1/gateway/secrets")
        assert refused.status_code == 403 and "is failed" in refused.json()["error"]
    # gw-1 attested, then failed: refused too, until it attests again
    with fleet.gateway("gw-1") as gw:
        gw.post("/v1/gateway/quote", json={"nonce": "11" * 32, "quote": "{}"})
        assert gw.get("/v1/gateway/secrets").status_code == 403
    assert attest_once(fleet, "gw-1")["verdict"] == "attested"
    assert t.delivered("gw-1") == {"minibar/mqtt-password": (1, "only-for-attested")}
    refusals = [e for e in t.audit("hotels/ops") if e["action"] == "gateway.secrets-refused"]
    assert {(e["target"], e["detail"]["attestation"]) for e in refusals} == {
        ("gw-2", "unknown"), ("gw-1", "failed")}  # one record per gateway per quiet window
    with t.as_("hotels/ops") as ops:
        kinds = {(a["gateway"], a["kind"]) for a in ops.get("/v1/alerts").json()}
    assert {("gw-1", "secrets-refused"), ("gw-2", "secrets-refused")} <= kinds


def test_malformed_requests_get_clean_errors(fleet: Fleet) -> None:
    t = tenants(fleet, attest=())
    with t.as_("hotels/ops") as ops:
        cases: list[tuple[str, str, Any, int]] = [
            ("PUT", "/v1/secrets/Minibar/x", {"value": "v"}, 422),  # upper case app
            ("PUT", "/v1/secrets/minibar/.x", {"value": "v"}, 422),
            ("PUT", f"/v1/secrets/minibar/{'n' * 65}", {"value": "v"}, 422),
            ("PUT", "/v1/secrets/minibar/x", {"value": 5}, 422),
            ("PUT", "/v1/secrets/minibar/x", {"value": ""}, 422),
            ("PUT", "/v1/secrets/minibar/x", {"value": "v", "extra": 1}, 422),
            ("PUT", "/v1/secrets/minibar/x", {"value": "v", "group": "No Such"}, 422),
            ("PUT", "/v1/secrets/minibar/x", {"value": "v", "group": "nosuch"}, 404),
            ("PUT", "/v1/secrets/minibar/x", {"value": "é" * 40000}, 422),  # 80 000 bytes
            ("PUT", "/v1/secrets/minibar/x", {}, 422),
            ("PUT", "/v1/secrets/minibar/x", [], 422),
            ("GET", "/v1/secrets?app=UPPER", None, 422),
            ("DELETE", "/v1/secrets/minibar/x", None, 404),
            ("DELETE", "/v1/secrets/minibar/x?group=a%20b", None, 422),
        ]
        for method, path, body, status in cases:
            answer = ops.request(method, path, json=body)
            assert answer.status_code == status, (method, path, answer.text)
            assert set(answer.json()) == {"error"} and answer.json()["error"]
        not_json = ops.put("/v1/secrets/minibar/x", content=b"\xff{",
                           headers={"content-type": "application/json"})
        assert not_json.status_code in (400, 422) and set(not_json.json()) == {"error"}
        huge = ops.put("/v1/secrets/minibar/x", json={"value": "x" * 300_000})
        assert huge.status_code == 413
        assert "x" * 64 not in huge.text
    assert t.listed("hotels/ops") == []
    with fleet.gateway("gw-1") as gw:  # a gateway cannot use the operators' routes ...
        assert gw.get("/v1/secrets").status_code == 401
    with t.as_("hotels/ops") as ops:  # ... nor an operator the gateways'
        assert ops.get("/v1/gateway/secrets").status_code == 401


def test_a_tenant_holds_a_bounded_number_of_secrets(fleet: Fleet,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    t = tenants(fleet, attest=("gw-1",))
    monkeypatch.setattr(secretstore, "MAX_SECRETS", 2)  # what one delivery carries at most
    t.put("hotels/ops", "minibar", "a", "1")
    t.put("hotels/ops", "minibar", "b", "2")
    full = t.put("hotels/ops", "minibar", "c", "3", status=409)
    assert "holds 2 secrets" in full["error"]
    assert t.put("hotels/ops", "minibar", "a", "1-again")["version"] == 2  # rotating is fine
    t.put("other/ops", "minibar", "c", "another tenant's count")
    with t.as_("hotels/ops") as ops:
        assert ops.delete("/v1/secrets/minibar/b").is_success
    assert t.put("hotels/ops", "minibar", "c", "3")["version"] == 1
    assert set(t.delivered("gw-1")) == {"minibar/a", "minibar/c"}


def test_the_heartbeat_says_when_a_gateways_secrets_changed(fleet: Fleet) -> None:
    t = tenants(fleet)

    def stamp(serial: str = "gw-1") -> str:
        with fleet.gateway(serial) as gw:
            answer = gw.post("/v1/gateway/heartbeat", json={
                "slot": "a", "boot_id": "ab" * 16,
                "versions": {"bl2": "1.0.0", "kernel": "1.0.0", "rootfs": "1.0.0"}})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["secrets"])

    seen = [stamp()]
    assert stamp() == seen[-1]  # nothing changed, nothing to fetch
    t.put("hotels/ops", "minibar", "pw", "v1")
    seen.append(stamp())
    t.put("hotels/ops", "minibar", "pw", "v2")  # rotated
    seen.append(stamp())
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 201
    t.put("hotels/ops", "minibar", "pw", "lobby", group="lobby")
    assert stamp() == seen[-1]  # gw-1 is not in lobby: its secrets did not change
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"}).is_success
    seen.append(stamp())
    with t.as_("hotels/ops") as ops:
        assert ops.delete("/v1/secrets/minibar/pw?group=lobby").is_success
    assert stamp() == seen[-2]  # back to what it had
    with t.as_("hotels/ops") as ops:
        assert ops.delete("/v1/secrets/minibar/pw").is_success
    assert stamp() == seen[0]
    assert len(set(seen)) == len(seen) and stamp("gw-2") == seen[0]
