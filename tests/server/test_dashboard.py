"""The dashboard in a real headless Chromium (Debian's), driven by Playwright.

Screenshots are kept in ``artifacts/`` (or ``$EDGEWARD_ARTIFACTS``) for people
to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_REAL
from tests.server.harness import Fleet, attest_once

ARTIFACTS = Path(os.environ.get("EDGEWARD_ARTIFACTS")
                 or Path(__file__).resolve().parents[2] / "artifacts")
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        message = "Debian's chromium and playwright are needed (run scripts/bootstrap)"
        if REQUIRE_REAL:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def tenant_with_fleet(fleet: Fleet) -> dict[str, str]:
    """Tenant 'hotels' with both gateways (one attested) and tenant 'other'; their tokens."""
    assert fleet.enrol("gw-1").is_success and fleet.enrol("gw-2").is_success
    assert attest_once(fleet, "gw-1")["verdict"] == "attested"
    tokens = {}
    with fleet.admin() as admin:
        for tenant in ("hotels", "other"):
            admin.post("/v1/tenants", json={"name": tenant})
            admin.post("/v1/users", json={"name": "ops", "role": "admin", "tenant": tenant})
            tokens[tenant] = admin.post("/v1/tokens", json={"user": "ops", "tenant": tenant}
                                        ).json()["token"]
        for serial in ("gw-1", "gw-2"):
            admin.post(f"/v1/gateways/{serial}/assign", json={"tenant": "hotels"})
    return tokens


def sign_in(browser: object, url: str, token: str) -> object:
    context = browser.new_context(ignore_https_errors=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(url + "/")
    assert page.url.endswith("/login")  # not signed in: sent to sign in
    page.fill("#token", token)
    page.click("#sign-in")
    return page


def test_dashboard_end_to_end(fleet: Fleet, browser: object, database_url: str) -> None:
    tokens = tenant_with_fleet(fleet)
    page = sign_in(browser, fleet.server.url, tokens["hotels"])
    page.wait_for_selector("#gateways")  # type: ignore[attr-defined]
    rows = page.inner_text("#gateways tbody")  # type: ignore[attr-defined]
    assert "gw-1" in rows and "gw-2" in rows
    assert page.inner_text("#count-total") == "2"  # type: ignore[attr-defined]
    assert page.inner_text("#count-attested") == "1"  # type: ignore[attr-defined]
    assert page.inner_text("#count-unknown") == "1"  # type: ignore[attr-defined]
    assert page.locator("#attestation-chart rect").count() == 2  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    shot = ARTIFACTS / f"dashboard-fleet-{backend}.png"
    page.screenshot(path=str(shot), full_page=True)  # type: ignore[attr-defined]
    assert shot.stat().st_size > 10_000
    page.click("text=gw-1")  # type: ignore[attr-defined]
    page.wait_for_selector("#gateway")  # type: ignore[attr-defined]
    detail = page.inner_text("#gateway")  # type: ignore[attr-defined]
    assert "attested" in detail and "gw-1" in detail
    page.goto(fleet.server.url + "/audit")  # type: ignore[attr-defined]
    log = page.inner_text("#audit")  # type: ignore[attr-defined]
    assert "session.login" in log and "gateway.assign" in log
    page.screenshot(path=str(ARTIFACTS / f"dashboard-audit-{backend}.png"))  # type: ignore[attr-defined]
    page.click("text=Sign out")  # type: ignore[attr-defined]
    page.goto(fleet.server.url + "/")  # type: ignore[attr-defined]
    assert page.url.endswith("/login")  # type: ignore[attr-defined]


def test_dashboard_refusals(fleet: Fleet, browser: object) -> None:
    tokens = tenant_with_fleet(fleet)
    page = sign_in(browser, fleet.server.url, "ewt_wrong")
    assert "valid API token" in page.inner_text(".error")  # type: ignore[attr-defined]
    other = sign_in(browser, fleet.server.url, tokens["other"])
    other.wait_for_selector("#gateways")  # type: ignore[attr-defined]
    assert "No gateways" in other.inner_text("#gateways")  # type: ignore[attr-defined]
    response = other.goto(fleet.server.url + "/gateways/gw-1")  # type: ignore[attr-defined]
    assert response.status == 404 and "gw-1" in other.inner_text("h1")  # type: ignore[attr-defined]
    assert "attested" not in other.inner_text("main")  # type: ignore[attr-defined]
