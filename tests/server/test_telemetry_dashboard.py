"""Fleet health and a gateway's telemetry charts, in Debian's headless Chromium: a
gateway mining in an app shows on the fleet page (reporting, its CPU, a high alert) and
its charts draw the gateway's and the app's CPU with the alert marked."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in
from tests.server.test_telemetry import APP, history, report
from tests.server.test_updates_api import prepare

pytestmark = ONE_DATABASE

__all__ = ["browser"]


def test_fleet_health_and_a_gateways_charts(fleet: Fleet, browser: object,
                                            database_url: str) -> None:
    setup = prepare(fleet)
    start = time.time() - 30 * 60  # an hour at 30 s, the last report just now
    with fleet.gateway("gw-1") as gw:
        reports = history(start, 58) + [report(start + 30 * (58 + i), cpu=97.0, app_cpu=95.0)
                                         for i in range(2)]
        assert gw.post("/v1/gateway/telemetry", json={"batch": os.urandom(16).hex(),
                                                      "reports": reports}).is_success
    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.wait_for_selector("#health-cards")
    assert page.inner_text("#health-reporting") == "1"  # gw-2 never reported
    assert page.inner_text("#health-open-high-alerts") == "2"  # the app's CPU, the gateway's
    row = page.locator("#gateways tr", has_text="gw-1")
    assert "reporting" in row.inner_text() and "97%" in row.inner_text()
    assert "2 high" in row.inner_text()
    assert "never" in page.locator("#gateways tr", has_text="gw-2").inner_text()
    page.click("text=gw-1")
    page.wait_for_selector("figure.telemetry")
    cpu = page.locator("#chart-1")
    assert cpu.locator("polyline.mean").count() == 2  # the gateway and its app
    assert cpu.locator(f"polyline[data-series='app {APP}']").count() == 1
    assert cpu.locator("line.alert-mark").count() >= 1
    band = cpu.locator("polygon.band").first.get_attribute("points").split()
    ys = [float(p.split(",")[1]) for p in band]
    assert min(ys) < 20 < 100 < max(ys)  # the highs reach 97% (top), the lows 10%
    assert f"app {APP} (now" in page.inner_text("#chart-1 figcaption")
    assert page.locator("#chart-3 polyline.mean").count() == 1  # network sent
    page.click("#chart-windows >> text=1 h")
    page.wait_for_url("**hours=1")
    assert "last 1 hour" in page.inner_text("h2:has-text('Telemetry')")
    assert page.locator("#chart-1 polyline.mean").count() == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-telemetry-{backend}.png"), full_page=True)
