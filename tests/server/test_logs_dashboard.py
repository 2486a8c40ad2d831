"""The Logs page in Debian's headless Chromium: search the fleet's lines, and from an
alert's row on the Alerts page, one click to the lines around it."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in
from tests.server.test_logs import line, raise_alert, ship
from tests.server.test_updates_api import prepare

pytestmark = ONE_DATABASE

__all__ = ["browser"]


def test_the_logs_page_and_an_alerts_logs(fleet: Fleet, browser: object,
                                          database_url: str) -> None:
    setup = prepare(fleet)
    now = time.time()
    ship(fleet, "gw-1", [
        line("miner started", now - 7200),
        line("hvac is fine", now - 200, app="hvac"),
        line("hashrate 90 MH/s", now - 120),
        line("ERROR cpu quota hit <script>alert(1)</script>", now - 60, level="error"),
        line("sampled cpu 97%", now - 50, app="", source="agent", level="warning"),
        line("hashrate 91 MH/s", now - 20)])
    ship(fleet, "gw-2", [line("connection refused by broker", now - 10, app="hvac")])
    alert = raise_alert(fleet, "gw-1", "cpu.anomaly",
                        dt.datetime.fromtimestamp(now - 55, dt.UTC), app="miner")

    page: Any = sign_in(browser, fleet.server.url, setup.tokens["hotels/eyes"])
    page.wait_for_selector("#gateways")
    page.click("header >> text=Logs")
    page.wait_for_selector("#logs")
    rows = page.inner_text("#logs tbody")
    assert rows.index("connection refused") < rows.index("hashrate 91") < rows.index(
        "miner started")  # newest first
    assert "<script>alert(1)</script>" in rows  # shown as text, not run
    assert "error" in page.locator("#logs tr.level-error td.level").inner_text()
    page.fill("#log-filters input[name=q]", "hashrate")
    page.fill("#log-filters input[name=gateway]", "gw-1")
    page.select_option("#log-filters select[name=since]", "1h")
    page.click("#filter")
    page.wait_for_url("**/logs?**")
    assert page.locator("#logs tbody tr").count() == 2
    assert "hashrate 91" in page.inner_text("#logs tbody")
    page.goto(fleet.server.url + "/logs?q=%22+NEAR(+*")
    assert "No log lines matching" in page.inner_text("#logs")
    page.goto(fleet.server.url + "/logs?gateway=../etc")
    assert "not valid" in page.inner_text("#filter-problem")

    page.click("header >> text=Alerts")
    page.wait_for_selector("#alerts")
    page.click(f"#alert-{alert} td.logs a")
    page.wait_for_url(f"**/logs?alert={alert}")
    summary = page.inner_text("#log-alert")
    assert f"Alert #{alert}" in summary and "cpu.anomaly" in summary
    assert "gw-1" in summary and "miner" in summary
    rows = page.inner_text("#logs tbody")
    assert "hvac" not in rows and "broker" not in rows and "miner started" not in rows
    assert (rows.index("hashrate 90") < rows.index("cpu quota hit")
            < rows.index("alert raised here") < rows.index("sampled cpu")
            < rows.index("hashrate 91"))  # oldest first, the alert where it was raised
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-logs-alert-{backend}.png"),
                    full_page=True)

    other: Any = sign_in(browser, fleet.server.url, setup.tokens["other/ops"])
    other.wait_for_selector("#gateways")
    other.goto(fleet.server.url + "/logs")
    assert "No log lines" in other.inner_text("#logs")
    answer = other.goto(fleet.server.url + f"/logs?alert={alert}")
    assert answer.status == 404
