"""The Findings page and a gateway's findings, in Debian's headless Chromium."""

from __future__ import annotations

import time
from typing import Any

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in
from tests.server.test_findings_api import DEBUG, GETTY, ROOT_LOGIN, SETUID, post
from tests.server.test_releases import entry
from tests.server.test_updates_api import Setup, prepare

pytestmark = ONE_DATABASE

__all__ = ["browser"]

HOSTILE = {"check": "services.unexpected", "severity": "medium",
           "title": "<script>alert(1)</script> listens",
           "detail": "0.0.0.0:4444 <b>nc</b>", "advice": "stop it: `systemctl disable nc`"}


def with_findings(fleet: Fleet) -> Setup:
    """gw-1 reports root login, a set-uid program and a hostile-looking service; gw-2 a
    getty and the debug port; gw-1 runs 1.0.0 while 1.1.0 fixes a security issue."""
    setup = prepare(fleet)
    setup.publish(entry("1.0.0"), entry("1.1.0", security_version=2))
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/heartbeat", json={
            "slot": "a", "boot_id": "ab" * 16, "versions": {"rootfs": "1.0.0"}}).is_success
    post(fleet, "gw-1", [ROOT_LOGIN, SETUID, HOSTILE], at=time.time() - 60)
    post(fleet, "gw-2", [GETTY, DEBUG])
    return setup


def test_the_findings_page(fleet: Fleet, browser: object, database_url: str) -> None:
    setup = with_findings(fleet)
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.wait_for_selector("#gateways")
    page.click("header >> text=Findings")
    page.wait_for_selector("#finding-counts")
    assert page.inner_text("#count-high") == "3"  # root login, debug port, patches
    assert page.inner_text("#count-medium") == "2"
    assert page.inner_text("#count-low") == "1"
    assert page.inner_text("#count-total") == "6"
    high = page.inner_text("#findings-high")
    assert "root may log in over SSH" in high and "the debug port is open" in high
    assert "behind on security patches" in high and "1.1.0 is offered to it" in high
    patches = page.locator("#findings-high tr[data-check='patches.behind']")
    assert patches.locator("td").nth(1).inner_text() == "fleet"
    medium = page.locator("#findings-medium")
    assert "<script>alert(1)</script> listens" in medium.inner_text()  # text, not run
    advice = medium.locator("tr[data-check='services.unexpected'] .finding-advice")
    assert advice.locator("code").inner_text() == "systemctl disable nc"  # a command
    assert "0.0.0.0:4444 <b>nc</b>" in medium.inner_text()
    assert "getty@tty1.service" in page.inner_text("#findings-low")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-findings-{backend}.png"), full_page=True)
    page.select_option("#finding-filters select[name=severity]", "high")
    page.select_option("#finding-filters select[name=source]", "gateway")
    page.click("#filter")
    page.wait_for_url("**/findings?**")
    assert page.locator("tr.finding").count() == 2
    assert page.locator("#findings-medium").count() == 0
    assert page.inner_text("#count-medium") == "2"  # the counts stay those of all
    page.goto(fleet.server.url + "/findings?gateway=gw-2")
    assert page.locator("tr.finding").count() == 2
    page.goto(fleet.server.url + "/findings?gateway=../etc")
    assert "not valid" in page.inner_text("#filter-problem")
    page.goto(fleet.server.url + "/findings?gateway=gw-9")
    assert "no gateway gw-9" in page.inner_text("#filter-problem")
    assert page.locator("tr.finding").count() == 6
    other: Any = sign_in(browser, fleet.server.url, setup.tokens["other/ops"])
    other.goto(fleet.server.url + "/findings")
    assert other.inner_text("#count-total") == "0"
    assert "No findings" in other.inner_text("#no-findings")


def test_the_gateway_page_shows_its_findings(fleet: Fleet, browser: object) -> None:
    setup = with_findings(fleet)
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.goto(fleet.server.url + "/gateways/gw-1")
    page.wait_for_selector("#gateway-findings")
    assert page.inner_text("#gateway-finding-counts") == "2 high · 2 medium · 0 low"
    rows = page.inner_text("#gateway-findings")
    assert "root may log in over SSH" in rows and "behind on security patches" in rows
    assert "debug port" not in rows  # gw-2's
    page.goto(fleet.server.url + "/gateways/gw-2")
    assert "the debug port is open" in page.inner_text("#gateway-findings")
