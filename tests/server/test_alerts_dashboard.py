"""The Alerts page in Debian's headless Chromium: severity, status and verdict shown; an
operator acknowledges an alert, judges it and orders its app stopped from the row, then its
gateway quarantined, which the gateway's page shows with the actions ordered; a viewer gets
no buttons; a form posted from another site is refused."""

from __future__ import annotations

from typing import Any

from tests.server.alerting import raise_alert
from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_alerts_life import with_operator
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in

pytestmark = ONE_DATABASE

__all__ = ["browser"]


def test_an_operator_handles_an_alert_from_the_dashboard(fleet: Fleet, browser: object,
                                                         database_url: str) -> None:
    setup = with_operator(fleet)
    miner = raise_alert(fleet, "gw-1", "cpu-anomaly", app="minibar", severity="critical")
    beacon = raise_alert(fleet, "gw-2", "new-remote-host", severity="medium")
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/hands"])
    page.wait_for_selector("#gateways")
    page.click("header >> text=Alerts")
    row = page.locator(f"#alert-{miner}")
    row.wait_for()
    assert row.locator(".severity").inner_text() == "critical"
    assert row.locator(".kind").inner_text() == "cpu-anomaly"
    assert row.locator(".app").inner_text() == "minibar"
    assert row.locator(".status").inner_text() == "open"
    assert row.locator(".verdict").inner_text() == "-"
    assert page.locator(f"#alert-{beacon} .stop-app").count() == 0  # no app: none to stop
    assert page.locator(f"#alert-{beacon} .quarantine").count() == 1

    row.locator("button.ack").click()
    page.wait_for_selector(f"#alert-{miner} .status >> text=acked")
    assert "hotels/hands" in row.locator(".status").inner_text()
    assert row.locator("button.ack").count() == 0
    row.locator("button.true-positive").click()
    page.wait_for_selector(f"#alert-{miner} .verdict >> text=true-positive")
    row.locator("button.stop-app").click()
    page.wait_for_selector(f"#alert-{miner} .response >> text=stop-app minibar: pending")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-alerts-{backend}.png"), full_page=True)

    with setup.as_("hotels/eyes") as viewer:  # what the buttons did, through the API
        (action,) = viewer.get("/v1/gateways/gw-1/actions").json()
        alert = next(a for a in viewer.get("/v1/alerts").json() if a["id"] == miner)
    assert (action["action"], action["app"], action["alert"], action["requested_by"]) == (
        "stop-app", "minibar", miner, "hotels/hands")
    assert (alert["status"], alert["verdict"]) == ("acked", "true-positive")
    with fleet.gateway("gw-1") as gw:
        assert gw.get("/v1/gateway/actions").json()["actions"] == [
            {"id": action["id"], "action": "stop-app", "app": "minibar"}]

    page.click("#view-open")  # open only: the acknowledged one is not
    page.wait_for_url("**/alerts?status=open")
    assert page.locator(f"#alert-{miner}").count() == 0
    assert page.locator(f"#alert-{beacon}").count() == 1
    page.locator(f"#alert-{beacon} button.resolve").click()
    page.wait_for_selector("#alerts >> text=No alerts open.")

    watcher: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    watcher.goto(fleet.server.url + "/alerts")
    assert watcher.locator(f"#alert-{miner} .response").inner_text() == \
        "stop-app minibar: delivered"
    assert watcher.locator("#alerts button").count() == 0  # viewers read only
    other: Any = sign_in(browser, fleet.server.url, setup.tokens["other/ops"])
    other.goto(fleet.server.url + "/alerts")
    assert "No alerts." in other.inner_text("#alerts")

    page.goto(fleet.server.url + "/alerts")  # quarantine the miner's gateway from its row
    page.locator(f"#alert-{miner} button.quarantine").click()
    page.wait_for_selector(f"#alert-{miner} .response >> text=quarantine: pending")
    page.goto(fleet.server.url + "/gateways/gw-1")  # its page says so, and what was ordered
    banner = page.locator("#gateway-quarantine")
    assert "quarantined since" in banner.inner_text()
    assert "edgeward fleet remediate gw-1 release" in banner.inner_text()
    assert [r.get_attribute("data-action") for r in
            page.locator("#gateway-actions tbody tr").all()] == ["quarantine", "stop-app"]
    assert "hotels/hands" in page.locator("#gateway-actions").inner_text()
    page.goto(fleet.server.url + "/gateways/gw-2")
    assert page.locator("#gateway-quarantine").count() == 0
    assert "No actions ordered." in page.locator("#gateway-actions").inner_text()

    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "ew_session")
    with fleet.operator(None) as stranger:  # the session cookie, from another site's form
        forged = stranger.post(f"/alerts/{beacon}/remediate", content="action=quarantine",
                               headers={"origin": "https://evil.example",
                                        "content-type": "application/x-www-form-urlencoded",
                                        "cookie": f"ew_session={cookie}"})
        assert forged.status_code == 403
        direct = stranger.post(f"/alerts/{beacon}/remediate", content="action=reboot",
                               headers={"content-type": "application/x-www-form-urlencoded",
                                        "cookie": f"ew_session={cookie}"})
        assert direct.status_code == 400
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.get("/v1/gateways/gw-2/actions").json() == []
