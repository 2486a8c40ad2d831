"""Apps on gateways over real HTTPS: status reports replace each other, operators set
complain or enforce mode (tenant admins, acknowledged, audited), the desired state
carries it, and complain mode's learnt profile comes back to operators."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edgeward.server.services import appprofiles
from tests.server.harness import Fleet
from tests.server.test_updates_api import Setup, prepare


def app(name: str = "minibar", **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "2.0.1", "publisher": "hotels", "state": "running",
            "mode": "enforce", "granted": ["network"], "withheld": ["network-manager"],
            "restarts": 0, "since": time.time() - 60, **extra}


def post(fleet: Fleet, serial: str, path: str, body: object, status: int = 200
         ) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.post(path, json=body)
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def apps_of(setup: Setup, serial: str = "gw-1", who: str = "hotels/eyes"
            ) -> list[dict[str, Any]]:
    with setup.as_(who) as client:
        answer = client.get(f"/v1/gateways/{serial}/apps")
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_an_apps_report_replaces_the_last(fleet: Fleet) -> None:
    setup = prepare(fleet)
    assert apps_of(setup) == []
    assert post(fleet, "gw-1", "/v1/gateway/apps", {"apps": [
        app(), app("hvac", state="crash-loop", restarts=5, withheld=[], since=None,
                   granted=["serial-port:ttyUSB0", "network"])]}) == {"ok": True}
    first = {a["name"]: a for a in apps_of(setup)}
    assert set(first) == {"hvac", "minibar"}
    minibar = first["minibar"]
    assert (minibar["version"], minibar["state"], minibar["mode"], minibar["desired_mode"],
            minibar["granted"], minibar["withheld"], minibar["profile"]) == (
        "2.0.1", "running", "enforce", "enforce", ["network"], ["network-manager"], False)
    assert minibar["since"] is not None and first["hvac"]["since"] is None
    assert first["hvac"]["granted"] == ["network", "serial-port:ttyUSB0"]
    assert first["hvac"]["restarts"] == 5
    post(fleet, "gw-1", "/v1/gateway/apps", {"apps": [app(version="2.0.2", withheld=[])]})
    (only,) = apps_of(setup)
    assert (only["name"], only["version"], only["withheld"]) == ("minibar", "2.0.2", [])
    post(fleet, "gw-2", "/v1/gateway/apps", {"apps": [app("other-thing")]})
    assert [a["name"] for a in apps_of(setup)] == ["minibar"]  # per gateway
    post(fleet, "gw-1", "/v1/gateway/apps", {"apps": []})
    assert apps_of(setup) == []
    with setup.as_("other/ops") as other:
        assert other.get("/v1/gateways/gw-2/apps").status_code == 404


@pytest.mark.parametrize("bad", [
    {"state": "exploded"}, {"mode": "lenient"}, {"granted": ["Not A Plug"]},
    {"restarts": -1}, {"since": "yesterday"}, {"name": "../x"}, {"colour": "red"},
    {"version": ""}])
def test_a_malformed_apps_report_is_422_and_changes_nothing(fleet: Fleet,
                                                            bad: dict[str, Any]) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    post(fleet, "gw-1", "/v1/gateway/apps", {"apps": [app()]})
    post(fleet, "gw-1", "/v1/gateway/apps", {"apps": [{**app("hvac"), **bad}]}, status=422)
    assert [a["name"] for a in apps_of(setup)] == ["minibar"]


def test_an_apps_report_names_each_app_once(fleet: Fleet) -> None:
    prepare(fleet, enrol=("gw-1",))
    post(fleet, "gw-1", "/v1/gateway/apps", {"apps": [app(), app()]}, status=422)


def test_modes_reach_the_desired_state(fleet: Fleet) -> None:
    setup = prepare(fleet)
    with setup.as_("hotels/ops") as ops:
        ops.post("/v1/groups", json={"name": "lab"})
        for serial in ("gw-1", "gw-2"):
            ops.post("/v1/groups/lab/gateways", json={"serial": serial})
        for name in ("minibar", "hvac"):
            assert ops.put(f"/v1/groups/lab/apps/{name}", json={
                "publisher": "hotels", "version": "2.0.1", "grants": ["network"]}).is_success
    assert [(a["name"], a["mode"]) for a in setup.desired("gw-1")["apps"]] == [  # type: ignore[attr-defined]
        ("hvac", "enforce"), ("minibar", "enforce")]
    with setup.as_("hotels/ops") as ops:
        made = ops.put("/v1/gateways/gw-1/apps/minibar/mode",
                       json={"mode": "complain", "test_gateway": True})
        assert made.status_code == 200, made.text
        assert made.json()["previous"] == "enforce" and made.json()["mode"] == "complain"
    assert [(a["name"], a["mode"]) for a in setup.desired("gw-1")["apps"]] == [  # type: ignore[attr-defined]
        ("hvac", "enforce"), ("minibar", "complain")]
    assert {a["mode"] for a in setup.desired("gw-2")["apps"]} == {"enforce"}  # type: ignore[attr-defined]
    assert apps_of(setup)[0]["desired_mode"] == "complain"  # set, not yet reported
    assert apps_of(setup)[0]["state"] is None
    with setup.as_("hotels/ops") as ops:
        back = ops.put("/v1/gateways/gw-1/apps/minibar/mode", json={"mode": "enforce"})
        assert back.status_code == 200 and back.json()["previous"] == "complain"
    assert {a["mode"] for a in setup.desired("gw-1")["apps"]} == {"enforce"}  # type: ignore[attr-defined]
    assert apps_of(setup) == []  # enforce is the default: nothing left to show
    with setup.as_("hotels/ops") as ops:
        ops.put("/v1/gateways/gw-1/apps/hvac/mode", json={"mode": "complain",
                                                          "test_gateway": True})
    with setup.as_("platform") as platform:  # handed over: the old tenant's mode stays behind
        platform.post("/v1/gateways/gw-1/assign", json={"tenant": "other"})
    with setup.as_("other/ops") as other:
        other.post("/v1/groups", json={"name": "lab"})
        other.post("/v1/groups/lab/gateways", json={"serial": "gw-1"})
        other.put("/v1/groups/lab/apps/hvac", json={"publisher": "other", "version": "1.0"})
        assert apps_of(setup, who="other/ops") == []
    assert [(a["name"], a["mode"]) for a in setup.desired("gw-1")["apps"]] == [  # type: ignore[attr-defined]
        ("hvac", "enforce")]


def test_complain_needs_a_tenant_admin_and_an_acknowledgement_and_is_audited(
        fleet: Fleet) -> None:
    setup = prepare(fleet)
    with setup.as_("platform") as platform:
        platform.post("/v1/users", json={"name": "hands", "role": "operator",
                                         "tenant": "hotels"})
        setup.tokens["hotels/hands"] = platform.post(
            "/v1/tokens", json={"user": "hands", "tenant": "hotels"}).json()["token"]
    path = "/v1/gateways/gw-1/apps/minibar/mode"
    for who in ("hotels/eyes", "hotels/hands"):
        with setup.as_(who) as client:
            refused = client.put(path, json={"mode": "complain", "test_gateway": True})
            assert refused.status_code == 403 and "app:mode" in refused.json()["error"]
    with setup.as_("hotels/ops") as ops:
        unacknowledged = ops.put(path, json={"mode": "complain"})
        assert unacknowledged.status_code == 400
        message = unacknowledged.json()["error"]
        assert "test gateway" in message and '"test_gateway": true' in message
        assert ops.put(path, json={"mode": "complain", "test_gateway": False}
                       ).status_code == 400
        assert ops.put(path, json={"mode": "complain", "test_gateway": "yes"}
                       ).status_code == 422
        assert ops.put(path, json={"mode": "lenient"}).status_code == 422
        assert ops.put(path, json={"mode": "complain", "test_gateway": True}).is_success
        assert ops.put(path, json={"mode": "enforce"}).is_success  # no acknowledgement needed
        audit = [e for e in ops.get("/v1/audit").json() if e["action"] == "app.mode"]
    assert [(e["target"], e["detail"]["mode"], e["detail"]["previous"], e["actor"])
            for e in audit] == [("gw-1/minibar", "enforce", "complain", "hotels/ops"),
                                ("gw-1/minibar", "complain", "enforce", "hotels/ops")]
    assert audit[1]["detail"]["test_gateway"] is True
    with setup.as_("other/ops") as other:
        assert other.put(path, json={"mode": "enforce"}).status_code == 404
        assert not [e for e in other.get("/v1/audit").json() if e["action"] == "app.mode"]


def test_a_learnt_profile_round_trips(fleet: Fleet) -> None:
    setup = prepare(fleet)
    now = time.time()
    profile = {"app": "minibar", "version": "2.0.1",
               "interfaces": ["serial-port:ttyUSB0", "network"],
               "egress": ["api.minibar.example:443", "10.20.0.0/16:1883"],
               "denied": [{"what": "read /etc/shadow denied (permissions)", "count": 3}],
               "observed_from": now - 3600, "observed_to": now}
    with setup.as_("hotels/eyes") as viewer:
        missing = viewer.get("/v1/gateways/gw-1/apps/minibar/profile")
        assert missing.status_code == 404 and "complain mode" in missing.json()["error"]
    assert post(fleet, "gw-1", "/v1/gateway/profiles", profile) == {"ok": True}
    post(fleet, "gw-1", "/v1/gateway/apps", {"apps": [app(mode="complain")]})
    with setup.as_("hotels/eyes") as viewer:
        shown = viewer.get("/v1/gateways/gw-1/apps/minibar/profile").json()
        assert viewer.get("/v1/gateways/gw-2/apps/minibar/profile").status_code == 404
    assert shown["interfaces"] == ["network", "serial-port:ttyUSB0"]
    assert shown["egress"] == ["10.20.0.0/16:1883", "api.minibar.example:443"]
    assert shown["denied"] == profile["denied"] and shown["version"] == "2.0.1"
    assert shown["manifest"] == ('plugs = ["network", "serial-port:ttyUSB0"]\n\n[egress]\n'
                                 'allow = ["10.20.0.0/16:1883", "api.minibar.example:443"]\n')
    (status,) = apps_of(setup)
    assert status["profile"] is True and status["mode"] == "complain"
    post(fleet, "gw-1", "/v1/gateway/profiles", {**profile, "interfaces": [], "denied": []})
    with setup.as_("hotels/eyes") as viewer:
        again = viewer.get("/v1/gateways/gw-1/apps/minibar/profile").json()
    assert again["interfaces"] == [] and again["denied"] == []  # the latest replaces it
    for bad in ({"observed_to": now - 7200}, {"egress": ["no-port"]},
                {"denied": [{"what": "x", "count": 0}]}, {"interfaces": ["BAD"]},
                {"extra": 1}):
        post(fleet, "gw-1", "/v1/gateway/profiles", {**profile, **bad}, status=422)
    with setup.as_("other/ops") as other:
        assert other.get("/v1/gateways/gw-1/apps/minibar/profile").status_code == 404


def test_the_manifest_snippet_is_toml() -> None:
    import tomllib

    text = appprofiles.manifest(["network", "gpio:17"], ["[fd00::1]:443", "a.example:80"])
    assert tomllib.loads(text) == {"plugs": ["network", "gpio:17"],
                                   "egress": {"allow": ["[fd00::1]:443", "a.example:80"]}}
    assert tomllib.loads(appprofiles.manifest([], [])) == {"plugs": [],
                                                          "egress": {"allow": []}}
