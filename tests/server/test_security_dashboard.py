"""The Security page and a gateway's Apps section, in Debian's headless Chromium."""

from __future__ import annotations

import time
from typing import Any

from tests.server.harness import Fleet
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in
from tests.server.test_updates_api import Setup, prepare

__all__ = ["browser"]


def with_events(fleet: Fleet) -> Setup:
    """gw-1 runs minibar (network-manager withheld) and hvac in complain mode; denials from
    both gateways in the last minutes; gw-2 flooded past the rate limit."""
    setup = prepare(fleet)
    now = time.time()
    events = [{"time": now - 600, "app": "minibar", "kind": "file", "count": 2,
               "what": "read /etc/shadow denied (permissions)"},
              {"time": now - 300, "app": "minibar", "kind": "network", "count": 5,
               "what": "connect 203.0.113.9:25 denied (egress)",
               "detail": {"mechanism": "egress"}},
              {"time": now - 120, "app": "hvac", "kind": "syscall",
               "what": "system call ptrace would be denied (seccomp)"},
              {"time": now - 60, "app": "", "kind": "sandbox",
               "what": "<script>alert(1)</script> tampered"},
              {"time": now - 50, "app": "hvac", "kind": "limit", "what": "memory limit hit"}]
    fleet.server.state.event_burst = 4  # the last one is dropped
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/events", json={"events": events}).json() == {
            "accepted": 4, "dropped": 1}
        fleet.server.state.event_burst = 300
        assert gw.post("/v1/gateway/apps", json={"apps": [
            {"name": "minibar", "version": "2.0.1", "publisher": "hotels",
             "state": "running", "mode": "enforce", "granted": ["network"],
             "withheld": ["network-manager", "bluez"], "restarts": 1, "since": now - 900},
            {"name": "hvac", "version": "1.4", "publisher": "hotels", "state": "crash-loop",
             "mode": "complain", "granted": [], "withheld": [], "restarts": 7,
             "since": None}]}).is_success
    with fleet.gateway("gw-2") as gw:
        assert gw.post("/v1/gateway/events", json={"events": [
            {"time": now - 30, "app": "minibar", "kind": "dbus",
             "what": "call org.freedesktop.NetworkManager denied (dbus)"}]}).is_success
    with setup.as_("hotels/ops") as ops:
        assert ops.put("/v1/gateways/gw-1/apps/hvac/mode",
                       json={"mode": "complain", "test_gateway": True}).is_success
    return setup


def test_the_security_page(fleet: Fleet, browser: object, database_url: str) -> None:
    setup = with_events(fleet)
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.wait_for_selector("#gateways")
    page.click("header >> text=Security")
    page.wait_for_selector("#events-chart")
    assert page.inner_text("#events-total") == "10"  # 2 + 5 + 1 + 1 + 1
    assert page.inner_text("#events-dropped") == "1"
    assert "1 event dropped by the rate limit" in page.inner_text("#dropped-line")
    assert "gw-1: 1" in page.inner_text("#dropped-line")
    chart = page.locator("#events-chart")
    assert chart.locator("rect").count() == 5  # a bar per minute and kind
    assert chart.locator("rect.bar-network").get_attribute("data-count") == "5"
    network = float(chart.locator("rect.bar-network").get_attribute("height"))
    assert network == 150  # the busiest minute is the full height
    assert float(chart.locator("rect.bar-file").get_attribute("height")) == 60
    assert "network (5)" in page.inner_text("#events-legend")
    rows = page.inner_text("#events tbody")
    assert rows.index("dbus") < rows.index("syscall") < rows.index("network")  # newest first
    assert "<script>alert(1)</script> tampered" in rows  # shown as text, not run
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-security-{backend}.png"), full_page=True)
    page.fill("#event-filters input[name=gateway]", "gw-1")
    page.select_option("#event-filters select[name=kind]", "network")
    page.click("#filter")
    page.wait_for_url("**/security?**")
    filtered = page.inner_text("#events tbody")
    assert "203.0.113.9" in filtered and "dbus" not in filtered and "shadow" not in filtered
    page.goto(fleet.server.url + "/security?app=hvac")
    assert "ptrace" in page.inner_text("#events tbody")
    assert "minibar" not in page.inner_text("#events tbody")
    page.goto(fleet.server.url + "/security?gateway=../etc")
    assert "not valid" in page.inner_text("#filter-problem")
    other: Any = sign_in(browser, fleet.server.url, setup.tokens["other/ops"])
    other.goto(fleet.server.url + "/security")
    assert other.inner_text("#events-total") == "0"
    assert "No security events" in other.inner_text("#events")
    assert "No events dropped" in other.inner_text("#dropped-line")


def test_the_gateway_page_shows_apps_and_their_events(fleet: Fleet, browser: object,
                                                      database_url: str) -> None:
    setup = with_events(fleet)
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.wait_for_selector("#gateways")
    page.click("text=gw-1")
    page.wait_for_selector("#apps")
    minibar = page.inner_text("#app-minibar")
    assert "2.0.1" in minibar and "running" in minibar
    withheld = page.locator("#app-minibar .app-withheld")
    assert withheld.inner_text() == "starts without: bluez, network-manager"
    assert "withheld" in withheld.get_attribute("class")
    assert page.inner_text("#app-minibar .app-granted") == "network"
    hvac_mode = page.locator("#app-hvac .app-mode")
    assert "complain" in hvac_mode.inner_text() and "not enforced" in hvac_mode.inner_text()
    assert "warning" in hvac_mode.get_attribute("class")
    assert "crash-loop" in page.inner_text("#app-hvac")
    events = page.inner_text("#gateway-events")
    assert "ptrace" in events and "203.0.113.9" in events
    assert "NetworkManager" not in events  # gw-2's
    assert "1 event dropped" in page.inner_text("#gateway-dropped")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-gateway-apps-{backend}.png"),
                    full_page=True)
    assert "app.mode" in page.inner_text("#gateway-audit")  # hvac put in complain mode
    page.goto(fleet.server.url + "/gateways/gw-2")
    assert "No apps reported" in page.inner_text("#apps")
    assert page.locator("#gateway-dropped").count() == 0
