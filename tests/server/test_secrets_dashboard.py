"""The Secrets page in Debian's headless Chromium: an admin sets, rotates and revokes a
secret through the forms; a viewer sees names and versions only; never a value on the
page; a form posted from another site is refused."""

from __future__ import annotations

from typing import Any

from tests.server.harness import Fleet
from tests.server.test_dashboard import ARTIFACTS, browser, sign_in
from tests.server.test_secrets_api import tenants

__all__ = ["browser"]


def test_the_secrets_page(fleet: Fleet, browser: object, database_url: str) -> None:
    t = tenants(fleet)
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 201
    t.put("hotels/ops", "hvac", "api-token", "value-set-by-the-api")
    page: Any = sign_in(browser, fleet.server.url, t.tokens["hotels/ops"])
    page.wait_for_selector("#gateways")
    page.click("header >> text=Secrets")
    page.wait_for_selector("#secrets")
    assert "api-token" in page.inner_text("#secrets")
    page.fill("#secret-app", "minibar")
    page.fill("#secret-name", "mqtt-password")
    page.select_option("#secret-group", "lobby")
    page.fill("#secret-value", "typed-in-the-browser-1")
    page.click("#secret-set")
    page.wait_for_selector("#secret-minibar-mqtt-password-lobby")
    row = page.inner_text("#secret-minibar-mqtt-password-lobby")
    assert "group lobby" in row and "\t1\t" in row
    page.fill("#secret-app", "minibar")
    page.fill("#secret-name", "mqtt-password")
    page.select_option("#secret-group", "lobby")
    page.fill("#secret-value", "typed-in-the-browser-2")
    page.click("#secret-set")
    page.wait_for_selector("#secret-minibar-mqtt-password-lobby")
    assert "\t2\t" in page.inner_text("#secret-minibar-mqtt-password-lobby")
    html = page.content()
    assert "typed-in-the-browser" not in html and "value-set-by-the-api" not in html
    with t.as_("hotels/ops") as ops:  # what the API sees: the same, and audited
        listed = {(s["app"], s["name"], s["group"]): s["version"]
                  for s in ops.get("/v1/secrets").json()}
        assert listed == {("hvac", "api-token", None): 1,
                          ("minibar", "mqtt-password", "lobby"): 2}
        assert ("hotels/ops", "secret.set", "minibar/mqtt-password") in {
            (e["actor"], e["action"], e["target"]) for e in ops.get("/v1/audit").json()}
    # a name the server refuses: said on the page, nothing set
    page.fill("#secret-app", "minibar")
    page.fill("#secret-name", "x")
    page.evaluate("document.querySelector('#secret-name').removeAttribute('pattern')")
    page.fill("#secret-name", "Bad Name")
    page.fill("#secret-value", "never-stored")
    page.click("#secret-set")
    page.wait_for_selector("#secret-error")
    assert "secret name 'Bad Name'" in page.inner_text("#secret-error")
    assert "never-stored" not in page.content()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-secrets-{backend}.png"), full_page=True)
    page.click("#revoke-hvac-api-token-")
    page.wait_for_selector("#secrets")
    assert "api-token" not in page.inner_text("#secrets")
    assert {s["name"] for s in t.listed("hotels/ops")} == {"mqtt-password"}
    # a viewer sees the list, no form, no button
    eyes: Any = sign_in(browser, fleet.server.url, t.tokens["hotels/eyes"])
    eyes.wait_for_selector("#gateways")
    eyes.goto(fleet.server.url + "/secrets")
    assert "mqtt-password" in eyes.inner_text("#secrets")
    assert eyes.locator("#set-secret").count() == 0 and eyes.locator(".revoke").count() == 0


def test_secret_forms_are_refused_across_sites_and_roles(fleet: Fleet) -> None:
    t = tenants(fleet, attest=())
    for who, origin, status in (("hotels/ops", "https://evil.example", 403),
                                ("hotels/eyes", None, 403), ("hotels/runner", None, 403)):
        with t.as_(who) as client:
            client.cookies.set("ew_session", t.tokens[who])
            headers = {"content-type": "application/x-www-form-urlencoded"}
            if origin:
                headers["origin"] = origin
            answer = client.post("/secrets", content=b"app=minibar&name=pw&value=v",
                                 headers=headers)
            assert answer.status_code == status, (who, answer.text)
    assert t.listed("hotels/ops") == []
    with fleet.operator(None) as nobody:  # no session: to the sign-in page
        answer = nobody.post("/secrets", content=b"app=minibar&name=pw&value=v",
                             headers={"content-type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
