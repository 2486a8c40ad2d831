"""OS updates over HTTPS: gateways (mutual TLS) learn what to install and report progress;
operators (tokens) manage groups and rollouts, through the API and the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeward import operator_config
from edgeward.cli.fleet import fleet as fleet_cli
from edgeward.cli.rollout import parse_stage, rollout
from edgeward.errors import InputError
from edgeward.server.services import releases
from tests.server.harness import Fleet
from tests.server.test_releases import NOW, entry

MODEL = "ew-gw1"  # the test factory's model


@dataclass
class Setup:
    fleet: Fleet
    tokens: dict[str, str]

    def as_(self, who: str):  # type: ignore[no-untyped-def]
        if who == "platform":
            return self.fleet.admin()
        return self.fleet.operator(self.tokens[who])

    def publish(self, *entries: releases.ReleaseEntry) -> None:
        with self.fleet.server.state.db.transaction() as s:
            releases.sync(s, list(entries), NOW)

    def desired(self, serial: str) -> dict[str, object]:
        with self.fleet.gateway(serial) as gw:
            answer = gw.get("/v1/gateway/desired")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def report(self, serial: str, status: int = 200, **body: object) -> dict[str, object]:
        body = {"progress": 100, "detail": "", **body}
        with self.fleet.gateway(serial) as gw:
            answer = gw.post("/v1/gateway/update", json=body)
        assert answer.status_code == status, answer.text
        return dict(answer.json())


def prepare(fleet: Fleet, enrol: tuple[str, ...] = ("gw-1", "gw-2")) -> Setup:
    """Tenants 'hotels' (admin ops, viewer eyes) holding the gateways, and 'other'."""
    tokens = {}
    with fleet.admin() as admin:
        for serial in enrol:
            assert fleet.enrol(serial).is_success
        for tenant, users in (("hotels", (("ops", "admin"), ("eyes", "viewer"))),
                              ("other", (("ops", "admin"),))):
            assert admin.post("/v1/tenants", json={"name": tenant}).status_code == 201
            for user, role in users:
                admin.post("/v1/users", json={"name": user, "role": role, "tenant": tenant})
                tokens[f"{tenant}/{user}"] = admin.post(
                    "/v1/tokens", json={"user": user, "tenant": tenant}).json()["token"]
        for serial in enrol:
            assert admin.post(f"/v1/gateways/{serial}/assign",
                              json={"tenant": "hotels"}).is_success
    return Setup(fleet, tokens)


def test_a_gateway_learns_what_to_install_and_reports_progress(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    assert setup.desired("gw-1") == {
        "os": None, "reason": "no release available for channel stable", "rollout_id": None,
        "window": "", "window_open": True, "auto_update": True, "apps": []}
    setup.publish(entry("1.0.0"))
    setup.publish(entry("1.0.0"), entry("1.1.0", "beta", 2))
    answer = setup.desired("gw-1")
    assert answer["os"] == {"version": "1.0.0", "model": MODEL, "security_version": 1,
                            "channel": "stable", "kernel": "os/ew-gw1/1.0.0/kernel.img",
                            "rootfs": "os/ew-gw1/1.0.0/rootfs.img", "delta": None}
    setup.report("gw-1", version="1.0.0", phase="downloading", progress=40)
    setup.report("gw-1", version="1.0.0", phase="downloading", progress=80)  # no new event
    assert setup.report("gw-1", version="1.0.0", phase="committed") == {"ok": True}
    with setup.as_("hotels/eyes") as viewer:
        state = viewer.get("/v1/gateways/gw-1/update").json()
    assert state["current"]["phase"] == "committed" and state["current"]["progress"] == 100
    assert [(e["version"], e["phase"]) for e in state["events"]] == [
        ("1.0.0", "committed"), ("1.0.0", "downloading")]
    assert state["desired"]["os"]["version"] == "1.0.0"
    with setup.as_("other/ops") as other:
        assert other.get("/v1/gateways/gw-1/update").status_code == 404


@pytest.mark.parametrize("bad", [
    {"phase": "exploded"}, {"progress": 101}, {"progress": -1}, {"detail": "x" * 501},
    {"detail": "nul\x00byte"}, {"version": "../etc"}, {"colour": "red"},
    {"rollout_id": 0}])
def test_malformed_update_reports_are_422(fleet: Fleet, bad: dict[str, object]) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    body = {"version": "1.0.0", "phase": "checking", "progress": 0, **bad}
    with fleet.gateway("gw-1") as gw:
        answer = gw.post("/v1/gateway/update", json=body)
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) == {"error"}
    setup.report("gw-1", version="1.0.0", phase="checking", rollout_id=7)  # stale: dropped
    with setup.as_("hotels/ops") as ops:
        assert ops.get("/v1/gateways/gw-1/update").json()["current"]["rollout_id"] is None
    with fleet.gateway("gw-2") as unenrolled:
        assert unenrolled.get("/v1/gateway/desired").status_code == 401


def test_groups_over_the_api(fleet: Fleet) -> None:
    setup = prepare(fleet)
    setup.publish(entry("1.0.0"))
    setup.publish(entry("1.0.0"), entry("1.1.0", "beta"))
    with setup.as_("hotels/ops") as ops:
        made = ops.post("/v1/groups", json={"name": "lobby", "channel": "beta",
                                            "window": "22:00-04:00"})
        assert made.status_code == 201, made.text
        assert made.json()["ref"] == "hotels/lobby"
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 409
        assert ops.post("/v1/groups", json={"name": "x", "window": "25:00-01:00"}
                        ).status_code == 422
        assert ops.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"}).is_success
    answer = setup.desired("gw-1")
    assert answer["os"]["version"] == "1.1.0"  # type: ignore[index]
    assert answer["window"] == "22:00-04:00" and setup.desired("gw-2")["os"]["version"] == (  # type: ignore[index]
        "1.0.0")
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.post("/v1/groups", json={"name": "mine"}).status_code == 403
        assert viewer.patch("/v1/groups/lobby", json={"channel": "edge"}).status_code == 403
        shown = viewer.get("/v1/groups/lobby").json()
        assert shown["members"] == ["gw-1"] and shown["gateways"] == 1
    with setup.as_("other/ops") as other:
        assert other.get("/v1/groups/lobby").status_code == 404
        assert other.get("/v1/groups").json() == []
        assert other.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"}
                          ).status_code == 404
        assert other.get("/v1/groups?tenant=hotels").status_code == 403
    with setup.as_("hotels/ops") as ops:
        pinned = ops.patch("/v1/groups/lobby", json={"pinned_version": "1.0.0"})
        assert pinned.json()["pinned_version"] == "1.0.0" and pinned.json()["channel"] == "beta"
        assert setup.desired("gw-1")["os"]["version"] == "1.0.0"  # type: ignore[index]
        assert ops.patch("/v1/groups/lobby", json={"pinned_version": None}
                         ).json()["pinned_version"] is None
        assert ops.delete("/v1/groups/lobby/gateways/gw-1").is_success
        assert ops.delete("/v1/groups/lobby/gateways/gw-1").status_code == 404
    assert setup.desired("gw-1")["os"]["version"] == "1.0.0"  # type: ignore[index]
    with setup.as_("platform") as platform:
        listed = platform.get("/v1/groups?tenant=hotels").json()
        assert [g["ref"] for g in listed] == ["hotels/lobby"]
        assert platform.delete("/v1/groups/lobby?tenant=hotels").is_success
        audit = [e["action"] for e in platform.get("/v1/audit").json()]
        assert "group.delete" not in audit  # it went to the tenant's log, not the platform's
    with setup.as_("hotels/ops") as ops:
        audit = [e["action"] for e in ops.get("/v1/audit").json()]
    assert {"group.create", "group.assign", "group.update", "group.remove",
            "group.delete"} <= set(audit)


def test_a_rollout_over_the_api_advances_then_halts_with_alerts(fleet: Fleet) -> None:
    setup = prepare(fleet)
    setup.publish(entry("1.0.0"))
    setup.publish(entry("1.0.0"), entry("1.1.0", security_version=2))
    with setup.as_("hotels/ops") as ops:
        ops.post("/v1/groups", json={"name": "lobby"})
        ops.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"})
        plan = {"model": MODEL, "version": "1.1.0",
                "stages": [{"groups": ["hotels/lobby"]}, {"percent": 100}]}
        assert ops.post("/v1/rollouts", json=plan).status_code == 403
    for serial in ("gw-1", "gw-2"):
        setup.report(serial, version="1.0.0", phase="committed")
    with setup.as_("platform") as platform:
        made = platform.post("/v1/rollouts", json=plan)
        assert made.status_code == 201, made.text
        rollout_id = made.json()["id"]
        assert platform.post("/v1/rollouts", json=plan).status_code == 409
        assert platform.post("/v1/rollouts", json={**plan, "stages": [{"percent": 0}]}
                             ).status_code == 422
    first = setup.desired("gw-1")
    assert first["os"]["version"] == "1.1.0" and first["rollout_id"] == rollout_id  # type: ignore[index]
    assert setup.desired("gw-2")["os"]["version"] == "1.0.0"  # type: ignore[index]
    setup.report("gw-1", version="1.1.0", phase="committed", rollout_id=rollout_id)
    with setup.as_("platform") as platform:
        shown = platform.get(f"/v1/rollouts/{rollout_id}").json()
    assert (shown["state"], shown["current_stage"]) == ("running", 1)
    assert [(s["targeted"], s["succeeded"], s["pending"]) for s in shown["stages"]] == [
        (1, 1, 0), (1, 0, 1)]
    assert setup.desired("gw-2")["rollout_id"] == rollout_id
    setup.report("gw-2", version="1.1.0", phase="rolled-back", rollout_id=rollout_id,
                 detail="health check failed")
    with setup.as_("platform") as platform:
        shown = platform.get(f"/v1/rollouts/{rollout_id}").json()
        assert shown["state"] == "halted" and "1 of 2" in shown["halted_reason"]
        assert [a["kind"] for a in platform.get("/v1/alerts").json()] == ["rollout-halted"]
        assert platform.post(f"/v1/rollouts/{rollout_id}/pause").status_code == 409
        assert platform.post(f"/v1/rollouts/{rollout_id}/abort").json()["state"] == "aborted"
        assert platform.get("/v1/rollouts/99999").status_code == 404
        assert platform.get("/v1/rollouts?state=bogus").status_code == 422
        assert [r["id"] for r in platform.get("/v1/rollouts?state=aborted").json()] == [
            rollout_id]
        audit = [e["action"] for e in platform.get("/v1/audit").json()]
    assert {"rollout.create", "rollout.advance", "rollout.halt", "rollout.abort"} <= set(audit)
    with setup.as_("hotels/eyes") as viewer:
        alerts = viewer.get("/v1/alerts").json()
        assert [(a["kind"], a["gateway"]) for a in alerts] == [("update-failed", "gw-2")]
        assert "health check failed" in alerts[0]["detail"]
        mine = viewer.get(f"/v1/rollouts/{rollout_id}").json()
        assert mine["stages"][0]["groups"] == ["hotels/lobby"]
        assert viewer.post(f"/v1/rollouts/{rollout_id}/resume").status_code == 403
    assert setup.desired("gw-2")["os"]["version"] == "1.0.0"  # type: ignore[index]


def test_release_listing(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=())
    setup.publish(entry("1.0.0"), entry("1.1.0", "candidate"), entry("2.0.0", model="other"))
    setup.publish(entry("1.1.0", "candidate"), entry("2.0.0", model="other"))
    with setup.as_("hotels/eyes") as viewer:
        assert [r["version"] for r in viewer.get("/v1/releases").json()] == ["2.0.0", "1.1.0"]
        found = viewer.get(f"/v1/releases?model={MODEL}&channel=candidate&yanked=true").json()
        assert [(r["version"], r["yanked_at"] is not None) for r in found] == [
            ("1.1.0", False), ("1.0.0", True)]
        assert viewer.get("/v1/releases?channel=nightly").status_code == 422


# -- the CLI ------------------------------------------------------------------------------


def cli(group: object, *args: str) -> str:
    result = CliRunner().invoke(group, list(args), catch_exceptions=False)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return result.output


def test_the_rollout_and_group_commands(fleet: Fleet, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    setup = prepare(fleet)
    setup.publish(entry("1.0.0"))
    setup.publish(entry("1.0.0"), entry("1.1.0", "candidate"))
    monkeypatch.setenv("EDGEWARD_CONFIG", str(tmp_path / "operator"))
    operator_config.save(fleet.server.url, Path(fleet.ca), setup.tokens["hotels/ops"])
    made = json.loads(cli(fleet_cli, "groups", "create", "lobby", "--channel", "candidate",
                          "--window", "01:00-05:00", "--json"))
    assert made["ref"] == "hotels/lobby" and made["auto_update"] is True
    assert "gw-1 is in group lobby" in cli(fleet_cli, "groups", "assign", "lobby", "gw-1")
    changed = json.loads(cli(fleet_cli, "groups", "set", "lobby", "--manual", "--pin", "1.0.0",
                             "--json"))
    assert (changed["auto_update"], changed["pinned_version"], changed["channel"]) == (
        False, "1.0.0", "candidate")
    back = json.loads(cli(fleet_cli, "groups", "set", "lobby", "--unpin", "--auto", "--json"))
    assert (back["pinned_version"], back["auto_update"]) == (None, True)
    assert [(g["name"], g["gateways"]) for g in json.loads(
        cli(fleet_cli, "groups", "list", "--json"))] == [("lobby", 1)]
    assert "lobby" in cli(fleet_cli, "groups", "list")
    assert [r["version"] for r in json.loads(cli(fleet_cli, "releases", "--channel", "stable",
                                                 "--json"))] == ["1.0.0"]
    assert "1.1.0" in cli(fleet_cli, "releases")
    refused = CliRunner().invoke(rollout, ["create", MODEL, "1.1.0", "--stage", "100%"])
    assert refused.exit_code != 0 and "may not" in str(refused.exception)
    operator_config.save(fleet.server.url, Path(fleet.ca),
                         (fleet.server.settings.data / "admin-token").read_text())
    started = json.loads(cli(rollout, "create", MODEL, "1.1.0", "--stage", "hotels/lobby",
                             "--stage", "50%", "--stage", "100", "--error-threshold", "30",
                             "--json"))
    assert [s.get("percent") or s.get("groups") for s in started["stages"]] == [
        ["hotels/lobby"], 50, 100]
    assert started["error_threshold"] == 30
    number = str(started["id"])
    assert "paused" in cli(rollout, "pause", number)
    listed = json.loads(cli(rollout, "list", "--state", "paused", "--json"))
    assert [r["id"] for r in listed] == [started["id"]]
    assert "hotels/lobby" in cli(rollout, "show", number)
    assert "rollouts" in cli(rollout, "list")
    assert "running" in cli(rollout, "resume", number)
    assert json.loads(cli(rollout, "abort", number, "--json"))["state"] == "aborted"


def test_stage_syntax() -> None:
    assert parse_stage("10%") == {"percent": 10} and parse_stage(" 25 ") == {"percent": 25}
    assert parse_stage("acme/lobby,acme/hall") == {"groups": ["acme/lobby", "acme/hall"]}
    with pytest.raises(InputError):
        parse_stage("ten")
