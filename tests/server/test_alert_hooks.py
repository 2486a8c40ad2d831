"""The alert web hook, posted by the running server to real HTTP receivers on 127.0.0.1:
signed with the key the tenant was given once, its tenant's alerts only, retried after the
receiver was down, redirects never followed; the URL checked; the key never stored plain."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import select

from edgeward.errors import InputError
from edgeward.server.db.monitoring import AlertHook
from edgeward.server.services import alerthooks, hookreach
from tests.server.alerting import Receiver, raise_alert, wait_for
from tests.server.harness import Fleet, free_port
from tests.server.test_updates_api import Setup, prepare


def quick(fleet: Fleet) -> None:
    """Rounds every 0.05 s and retries after 0.1-0.4 s: the same worker, sooner."""
    hooks = fleet.server.hooks
    hooks.interval, hooks.backoff, hooks.max_backoff = 0.05, 0.1, 0.4


def set_hook(setup: Setup, who: str, url: str) -> dict[str, Any]:
    with setup.as_(who) as client:
        answer = client.put("/v1/alert-hook", json={"url": url})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def hook_state(setup: Setup, who: str) -> dict[str, Any]:
    with setup.as_(who) as client:
        return dict(client.get("/v1/alert-hook").json())


def test_alerts_are_posted_signed_to_their_own_tenant_only(fleet: Fleet) -> None:
    quick(fleet)
    setup = prepare(fleet)
    with fleet.admin() as platform:  # gw-2 goes to tenant 'other'
        assert platform.post("/v1/gateways/gw-2/assign", json={"tenant": "other"}).is_success
    before = raise_alert(fleet, "gw-1", "before-the-hook")
    with Receiver() as hotels, Receiver() as other:
        hotels_hook = set_hook(setup, "hotels/ops", hotels.url)
        other_hook = set_hook(setup, "other/ops", other.url)
        key = hotels_hook["key"]
        assert len(key) == 64 and int(key, 16) >= 0 and key != other_hook["key"]
        mine = raise_alert(fleet, "gw-1", "cpu-anomaly", app="minibar", severity="critical")
        theirs = raise_alert(fleet, "gw-2", "new-listening-port")
        wait_for(lambda: hotels.received and other.received, "both hooks to be posted")
        wait_for(lambda: hook_state(setup, "hotels/ops")["delivered"] == 1, "the count")
        (headers, body), = hotels.received
        assert headers["x-edgeward-delivery"] == str(mine)
        assert headers["content-type"] == "application/json"
        expected = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-edgeward-signature"], expected)
        wrong = "sha256=" + hmac.new(other_hook["key"].encode(), body,
                                     hashlib.sha256).hexdigest()
        assert headers["x-edgeward-signature"] != wrong
        posted = json.loads(body)
        assert {k: posted[k] for k in ("id", "gateway", "kind", "app", "severity", "detail",
                                       "evidence")} == {
            "id": mine, "gateway": "gw-1", "kind": "cpu-anomaly", "app": "minibar",
            "severity": "critical", "detail": "cpu-anomaly on gw-1",
            "evidence": {"cpu": 0.93, "z": 7.5}}
        assert [h["x-edgeward-delivery"] for h, _ in other.received] == [str(theirs)]
        assert before not in {json.loads(b)["id"] for _, b in hotels.received}
    state = hook_state(setup, "hotels/ops")
    assert state["url"] == hotels.url and "key" not in state
    assert (state["delivered"], state["failed"], state["last_error"]) == (1, 0, "")
    with fleet.server.state.db.transaction() as session:
        stored = [h.secret for h in session.execute(select(AlertHook)).scalars()]
    assert len(stored) == 2
    assert all(key.encode() not in blob and bytes.fromhex(key) not in blob for blob in stored)


def test_the_unassigned_pools_alerts_go_to_the_platforms_hook(fleet: Fleet) -> None:
    quick(fleet)
    setup = prepare(fleet, enrol=("gw-1",))
    assert fleet.enrol("gw-2").is_success  # and not handed to any tenant
    with Receiver() as platform_receiver, Receiver() as hotels:
        key = set_hook(setup, "platform", platform_receiver.url)["key"]
        set_hook(setup, "hotels/ops", hotels.url)
        pool = raise_alert(fleet, "gw-2", "identity-conflict")
        held = raise_alert(fleet, "gw-1", "beacon")
        wait_for(lambda: platform_receiver.received and hotels.received, "both posts")
    assert [h["x-edgeward-delivery"] for h, _ in platform_receiver.received] == [str(pool)]
    assert [h["x-edgeward-delivery"] for h, _ in hotels.received] == [str(held)]
    headers, body = platform_receiver.received[0]
    assert alerthooks.verify(key, body, headers["x-edgeward-signature"])


def test_an_alert_committed_late_is_still_posted_once(fleet: Fleet) -> None:
    """PostgreSQL hands out ids before commit: an alert may appear behind the cursor."""
    quick(fleet)
    setup = prepare(fleet, enrol=("gw-1",))
    with Receiver() as receiver:
        set_hook(setup, "hotels/ops", receiver.url)
        first = raise_alert(fleet, "gw-1", "cpu-anomaly")
        wait_for(lambda: receiver.received, "the first alert")
        with fleet.server.state.db.transaction() as session:  # as if a later id went first
            hook = session.execute(select(AlertHook)).scalar_one()
            hook.last_alert_id += 1000
        late = raise_alert(fleet, "gw-1", "beacon")
        wait_for(lambda: len(receiver.received) >= 2, "the late alert")
        after = raise_alert(fleet, "gw-1", "new-listening-port")
        wait_for(lambda: len(receiver.received) >= 3, "the next alert")
    assert [h["x-edgeward-delivery"] for h, _ in receiver.received] == [
        str(first), str(late), str(after)]


def test_a_hook_down_is_retried_until_it_takes_the_alert(fleet: Fleet) -> None:
    quick(fleet)
    setup = prepare(fleet, enrol=("gw-1",))
    port = free_port()  # nothing listens there yet
    key = set_hook(setup, "hotels/ops", f"http://127.0.0.1:{port}/hook")["key"]
    alert_id = raise_alert(fleet, "gw-1", "beacon")
    down = wait_for(lambda: (s := hook_state(setup, "hotels/ops"))["failed"] >= 2 and s,
                    "two failed attempts")
    assert down["delivered"] == 0 and down["last_error"]
    with Receiver(port) as receiver:
        wait_for(lambda: hook_state(setup, "hotels/ops")["delivered"] == 1, "the delivery")
    assert {h["x-edgeward-delivery"] for h, _ in receiver.received} == {str(alert_id)}
    headers, body = receiver.received[0]
    assert alerthooks.verify(key, body, headers["x-edgeward-signature"])
    up = hook_state(setup, "hotels/ops")
    assert up["last_error"] == "" and up["failed"] >= 2 and up["last_alert_id"] == alert_id


def test_a_redirect_is_not_followed(fleet: Fleet) -> None:
    quick(fleet)
    setup = prepare(fleet, enrol=("gw-1",))
    with Receiver() as elsewhere, Receiver(status=302, location=elsewhere.url) as redirecting:
        set_hook(setup, "hotels/ops", redirecting.url)
        raise_alert(fleet, "gw-1", "beacon")
        failed = wait_for(lambda: (s := hook_state(setup, "hotels/ops"))["failed"] and s,
                          "a failed attempt")
        assert "302" in failed["last_error"] and "not followed" in failed["last_error"]
        assert failed["delivered"] == 0
        assert redirecting.received and elsewhere.received == []


def test_hook_settings_are_checked_and_admins_only(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=())
    with setup.as_("hotels/ops") as admin:
        for url in ("ftp://example.com/x", "http://example.com/hook", "https://u:p@x.org/",
                    "https:///nohost", "not a url", "https://x.org/#frag", "http://10.0.0.1/"):
            refused = admin.put("/v1/alert-hook", json={"url": url})
            assert refused.status_code == 400, url
            assert set(refused.json()) == {"error"}
        assert admin.get("/v1/alert-hook").status_code == 404
        assert admin.put("/v1/alert-hook", json={"url": "https://siem.example/h",
                                                 "extra": 1}).status_code == 422
        first = admin.put("/v1/alert-hook", json={"url": "https://siem.example/h"}).json()
        again = admin.put("/v1/alert-hook", json={"url": "https://siem.example/h2"}).json()
        assert first["key"] != again["key"]  # replaced: a new key
        assert admin.get("/v1/alert-hook").json()["url"] == "https://siem.example/h2"
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.get("/v1/alert-hook").status_code == 403
        assert viewer.put("/v1/alert-hook", json={"url": "https://evil.example/"}
                          ).status_code == 403
        assert viewer.delete("/v1/alert-hook").status_code == 403
    with setup.as_("other/ops") as other:
        assert other.get("/v1/alert-hook").status_code == 404  # hotels' is not theirs
    with setup.as_("hotels/ops") as admin:
        assert admin.delete("/v1/alert-hook").json() == {"deleted": True}
        assert admin.get("/v1/alert-hook").status_code == 404
        assert admin.delete("/v1/alert-hook").status_code == 404
        actions = [e["action"] for e in admin.get("/v1/audit").json()]
    assert actions[:3] == ["alert-hook.delete", "alert-hook.set", "alert-hook.set"]


GOOD = ["https://siem.example/hook", "https://siem.example:8443/a?b=c", "http://127.0.0.1:9/x",
        "http://localhost/x", "http://[::1]:8080/x", "http://127.5.6.7/"]
BAD = ["http://example.com/", "http://192.168.1.2/", "ftp://x/", "https://", "https://a b/",
       "https://u@x/", "https://x/#f", "https://x:0/", "https://x:99999/", "javascript:x",
       "https://x/\n", "https://" + "a" * 500]


@pytest.mark.parametrize("url", GOOD)
def test_a_good_url_is_taken(url: str) -> None:  # loopback ones where loopback is allowed
    assert alerthooks.check_url(url, hookreach.LOOPBACK) == url


@pytest.mark.parametrize("url", BAD)
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(InputError):
        alerthooks.check_url(url, hookreach.LOOPBACK)
