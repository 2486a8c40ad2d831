"""The Updates page and a gateway's update state, in Debian's headless Chromium."""

from __future__ import annotations

from typing import Any

from tests.server.harness import Fleet
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in
from tests.server.test_releases import entry
from tests.server.test_updates_api import MODEL, prepare

__all__ = ["browser"]


def rollout_in_stage_two(fleet: Fleet) -> tuple[Any, int]:
    """gw-1 (group hotels/lobby) committed 1.1.0 in stage 1: the rollout is in stage 2."""
    setup = prepare(fleet)
    setup.publish(entry("1.0.0"))
    setup.publish(entry("1.0.0"), entry("1.1.0", security_version=2))
    with setup.as_("hotels/ops") as ops:
        ops.post("/v1/groups", json={"name": "lobby"})
        ops.post("/v1/groups/lobby/gateways", json={"serial": "gw-1"})
    with setup.as_("platform") as platform:
        rollout_id = int(platform.post("/v1/rollouts", json={
            "model": MODEL, "version": "1.1.0",
            "stages": [{"groups": ["hotels/lobby"]}, {"percent": 100}]}).json()["id"])
    setup.report("gw-1", version="1.1.0", phase="downloading", progress=50,
                 rollout_id=rollout_id)
    setup.report("gw-1", version="1.1.0", phase="committed", rollout_id=rollout_id)
    setup.report("gw-2", version="1.1.0", phase="writing", progress=30, rollout_id=rollout_id)
    return setup, rollout_id


def test_the_updates_page_shows_rollouts_and_pauses_one(fleet: Fleet, browser: object,
                                                        database_url: str) -> None:
    setup, rollout_id = rollout_in_stage_two(fleet)
    admin_token = (fleet.server.settings.data / "admin-token").read_text().strip()
    page: Any = sign_in(browser, fleet.server.url, admin_token)
    page.wait_for_selector("#gateways")
    page.click("text=Updates")
    page.wait_for_selector(f"#rollout-{rollout_id}")
    assert page.inner_text("#channel-stable") == "1.1.0"
    assert "1.0.0" in page.inner_text("#releases")
    section = f"#rollout-{rollout_id}"
    assert page.inner_text(f"{section}-state") == "running"
    stages = page.inner_text(f"{section}-stages")
    assert "hotels/lobby" in stages and "100% of the fleet" in stages
    chart = page.locator(f"{section}-chart")
    first_ok = float(chart.locator(".bar-succeeded").nth(0).get_attribute("width"))
    second_ok = float(chart.locator(".bar-succeeded").nth(1).get_attribute("width"))
    second_pending = float(chart.locator(".bar-pending").nth(1).get_attribute("width"))
    assert first_ok == 360 and second_ok == 0 and second_pending == 360
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-updates-{backend}.png"), full_page=True)
    page.click(f"{section}-pause")
    page.wait_for_selector(f"{section}-resume")
    assert page.inner_text(f"{section}-state") == "paused"
    with setup.as_("platform") as platform:
        assert platform.get(f"/v1/rollouts/{rollout_id}").json()["state"] == "paused"
        audit = [e["action"] for e in platform.get("/v1/audit").json()]
    assert "rollout.pause" in audit
    page.click(f"{section}-resume")
    page.wait_for_selector(f"{section}-pause")
    assert page.inner_text(f"{section}-state") == "running"


def test_tenants_see_progress_but_cannot_steer(fleet: Fleet, browser: object) -> None:
    setup, rollout_id = rollout_in_stage_two(fleet)
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.wait_for_selector("#gateways")
    page.goto(fleet.server.url + "/updates")
    page.wait_for_selector(f"#rollout-{rollout_id}")
    assert page.locator(f"#rollout-{rollout_id}-pause").count() == 0  # no buttons
    refused = page.request.post(fleet.server.url + f"/rollouts/{rollout_id}/abort")
    assert refused.status == 403  # the viewer may not, even posting by hand
    forged = page.request.post(fleet.server.url + f"/rollouts/{rollout_id}/abort",
                               headers={"origin": "https://evil.example"})
    assert forged.status == 403 and "another site" in forged.text()
    with setup.as_("platform") as platform:
        assert platform.get(f"/v1/rollouts/{rollout_id}").json()["state"] == "running"
    page.goto(fleet.server.url + "/gateways/gw-2")
    state = page.inner_text("#update-state")
    assert "1.1.0" in state and "writing" in state
    assert page.get_attribute("#update-progress", "value") == "30"
    page.goto(fleet.server.url + "/gateways/gw-1")
    assert "committed" in page.inner_text("#update-state")
    events = page.inner_text("#update-events")
    assert "downloading" in events and "committed" in events
