"""Security events over real HTTPS: gateways send them (mutual TLS), behind a rate limit;
operators of the gateway's tenant read them, filtered and summed per minute."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest

from edgeward.errors import InputError
from edgeward.server.services import intake, security
from tests.server.harness import Fleet
from tests.server.test_updates_api import Setup, prepare


def event(what: str = "read /etc/shadow denied (permissions)", **extra: Any) -> dict[str, Any]:
    return {"time": time.time(), "app": "minibar", "kind": "file", "what": what,
            "detail": {"mechanism": "landlock", "access": "read", "target": "/etc/shadow",
                       "comm": "cat", "pid": 12, "allowed": False},
            "count": 1, **extra}


def send(fleet: Fleet, serial: str, events: list[dict[str, Any]], status: int = 200
         ) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.post("/v1/gateway/events", json={"events": events})
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def stored(setup: Setup, who: str = "hotels/eyes", query: str = "") -> list[dict[str, Any]]:
    with setup.as_(who) as client:
        answer = client.get("/v1/events" + query)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_events_are_accepted_and_queryable(fleet: Fleet) -> None:
    setup = prepare(fleet)
    now = time.time()
    batch = [event(time=now - 30),
             event("connect 203.0.113.9:25 denied (egress)", kind="network", time=now - 20,
                   detail={"mechanism": "egress", "target": "203.0.113.9:25"}, count=7),
             event("system call ptrace denied (seccomp)", kind="syscall", app="hvac",
                   time=now - 10),
             event("kernel lockdown refused a module", kind="sandbox", app="", time=now)]
    assert send(fleet, "gw-1", batch) == {"accepted": 4, "dropped": 0}
    assert send(fleet, "gw-2", [event(time=now - 5)]) == {"accepted": 1, "dropped": 0}
    newest_first = stored(setup)
    assert [(e["gateway"], e["kind"]) for e in newest_first] == [
        ("gw-1", "sandbox"), ("gw-2", "file"), ("gw-1", "syscall"), ("gw-1", "network"),
        ("gw-1", "file")]
    network = newest_first[3]
    assert network["count"] == 7 and network["app"] == "minibar"
    assert network["detail"] == {"mechanism": "egress", "target": "203.0.113.9:25"}
    assert network["what"] == "connect 203.0.113.9:25 denied (egress)"
    assert abs(dt.datetime.fromisoformat(network["time"]).timestamp() - (now - 20)) < 0.01
    assert newest_first[0]["app"] == ""  # the gateway itself
    assert [e["kind"] for e in stored(setup, query="?gateway=gw-1&app=minibar")] == [
        "network", "file"]
    assert [e["app"] for e in stored(setup, query="?kind=syscall")] == ["hvac"]
    assert len(stored(setup, query="?limit=2")) == 2
    assert len(stored(setup, query=f"?since={now - 15}")) == 3
    iso = dt.datetime.fromtimestamp(now - 15, dt.UTC).isoformat()
    assert len(stored(setup, query=f"?since={iso.replace('+00:00', 'Z')}")) == 3
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.get("/v1/events?since=yesterday").status_code == 400
        assert viewer.get("/v1/events?limit=1001").status_code == 422
        assert viewer.get("/v1/events?kind=bogus").status_code == 422
        summary = viewer.get("/v1/events/summary").json()
    assert summary["bucket"] == 60 and summary["total"] == 11
    assert summary["by_kind"]["network"] == 7 and summary["by_kind"]["file"] == 2
    assert sum(b["total"] for b in summary["buckets"]) == 11
    assert 60 <= len(summary["buckets"]) <= 61
    assert summary["dropped"] == {"total": 0, "gateways": []}


def test_a_gateway_clock_ahead_is_clamped_to_the_server_now(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    send(fleet, "gw-1", [event(time=time.time() + 86400)])
    (found,) = stored(setup)
    when = dt.datetime.fromisoformat(found["time"]).timestamp()
    assert when <= time.time() + 61


BAD: list[tuple[str, Any]] = [
    ("kind", "exploded"), ("what", "x" * 301), ("what", ""), ("what", "two\nlines"),
    ("count", 0), ("count", "3"), ("time", -1), ("time", "now"), ("time", 1e300),
    ("what", "half a pair \ud800"), ("app", "Bad App"), ("detail", {"blob": "x" * 2100}),
    ("detail", []), ("detail", {"lone": "\udc00"}), ("detail", {"n": float("nan")}),
    ("colour", "red")]


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f for f, _ in BAD])
def test_a_malformed_batch_is_422_and_stores_nothing(fleet: Fleet, field: str,
                                                     value: Any) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    batch = [event(), {**event(), field: value}]
    with fleet.gateway("gw-1") as gw:  # escaped as Python's json does (httpx would refuse)
        answer = gw.post("/v1/gateway/events", content=json.dumps({"events": batch}),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) == {"error"}
    assert answer.json()["error"].startswith("invalid request")
    assert stored(setup) == []


def test_batch_limits(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    send(fleet, "gw-1", [event()] * 501, status=422)
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/events", json={"events": [event()], "x": 1}
                       ).status_code == 422
        assert gw.post("/v1/gateway/events", json=[event()]).status_code == 422
    assert stored(setup) == []
    assert send(fleet, "gw-1", []) == {"accepted": 0, "dropped": 0}
    big = [event(detail={"blob": "x" * 2000}) for _ in range(300)]  # ~700 KB: taken
    assert send(fleet, "gw-1", big) == {"accepted": 300, "dropped": 0}


def test_unenrolled_revoked_and_anonymous_gateways_are_refused(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    assert send(fleet, "gw-2", [event()], status=401)["error"].endswith("enrol this gateway "
                                                                         "first")
    with fleet.operator(setup.tokens["hotels/ops"]) as ops:  # a token is no certificate
        refused = ops.post("/v1/gateway/events", json={"events": [event()]})
        assert refused.status_code == 401 and "factory certificate" in refused.text
        assert ops.post("/v1/gateways/gw-1/revoke").is_success
    assert "revoked" in send(fleet, "gw-1", [event()], status=403)["error"]
    assert stored(setup) == []


def test_tenants_see_only_their_own_events(fleet: Fleet) -> None:
    setup = prepare(fleet)
    send(fleet, "gw-1", [event()])
    with setup.as_("other/ops") as other:
        assert other.get("/v1/events").json() == []
        assert other.get("/v1/events?gateway=gw-1").json() == []
        assert other.get("/v1/events/summary").json()["total"] == 0
    with setup.as_("platform") as platform:  # the unassigned pool only
        assert platform.get("/v1/events").json() == []
    with fleet.operator(None) as anonymous:
        assert anonymous.get("/v1/events").status_code == 401
    assert len(stored(setup)) == 1
    with setup.as_("platform") as platform:  # handed over: its past stays with hotels
        assert platform.post("/v1/gateways/gw-1/assign", json={"tenant": "other"}).is_success
    send(fleet, "gw-1", [event("now other's", kind="signal")])
    assert [e["kind"] for e in stored(setup)] == ["file"]
    assert [e["kind"] for e in stored(setup, "other/ops")] == ["signal"]


def test_a_flood_is_cut_at_the_bucket_with_one_alert(fleet: Fleet) -> None:
    setup = prepare(fleet)
    state = fleet.server.state
    start = dt.datetime.now(dt.UTC)
    clock = {"now": start}
    state.clock = lambda: clock["now"]
    sent = accepted = dropped = 0
    for _ in range(4):  # 2,000 events at once: the burst passes, the rest is dropped
        answer = send(fleet, "gw-1", [event(f"loop {i}") for i in range(500)])
        sent += 500
        accepted += answer["accepted"]
        dropped += answer["dropped"]
    assert (accepted, dropped) == (state.event_burst, sent - state.event_burst) == (300, 1700)
    clock["now"] = start + dt.timedelta(seconds=10)  # refilled: 5 a second
    assert send(fleet, "gw-1", [event()] * 100) == {"accepted": 50, "dropped": 50}
    clock["now"] = start + dt.timedelta(hours=1)  # full again, never above the burst
    assert send(fleet, "gw-1", [event()] * 400) == {"accepted": 300, "dropped": 100}
    assert send(fleet, "gw-2", [event()] * 10) == {"accepted": 10, "dropped": 0}  # its own
    with setup.as_("hotels/eyes") as viewer:
        alerts = viewer.get("/v1/alerts").json()
        summary = viewer.get("/v1/events/summary?bucket=600").json()
        assert len(viewer.get("/v1/events?limit=1000&gateway=gw-1").json()) == 650
    flood = [a for a in alerts if a["kind"] == "events.flood"]
    assert len(flood) == 2 and {a["gateway"] for a in flood} == {"gw-1"}  # 10 min apart
    assert "dropped" in flood[0]["detail"]
    assert summary["dropped"]["total"] == 1850
    assert [(g["gateway"], g["dropped"], g["accepted"]) for g in summary["dropped"]["gateways"]
            ] == [("gw-1", 1850, 650)]
    with setup.as_("other/ops") as other:
        assert other.get("/v1/events/summary").json()["dropped"]["total"] == 0
        assert other.get("/v1/alerts").json() == []


def test_the_summary_buckets_by_time_and_kind(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    now = time.time()
    minute = 60 * (now // 60)
    send(fleet, "gw-1", [event(time=minute - 90, count=2),  # two buckets back
                         event(time=minute - 30, kind="dbus", count=3),
                         event(time=minute - 20, count=4),
                         event(time=minute - 4000, count=100)])  # before the hour
    with setup.as_("hotels/eyes") as viewer:
        summary = viewer.get(f"/v1/events/summary?since={minute - 120}").json()
        assert viewer.get("/v1/events/summary?bucket=5").status_code == 422
        too_many = viewer.get(f"/v1/events/summary?since={now - 86400 * 30}&bucket=60")
        assert too_many.status_code == 400 and "buckets" in too_many.json()["error"]
    assert summary["total"] == 9
    starts = [dt.datetime.fromisoformat(b["start"]).timestamp() for b in summary["buckets"]]
    assert starts[:2] == [minute - 120, minute - 60]
    assert summary["buckets"][0]["counts"] == {"file": 2}
    assert summary["buckets"][1]["counts"] == {"dbus": 3, "file": 4}
    assert summary["buckets"][1]["total"] == 7


# -- the pure parts -----------------------------------------------------------------------


def test_the_token_bucket() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert intake.take(300.0, t0, t0, 500, 300, 5.0) == (300, 0.0)
    assert intake.take(0.0, t0, t0 + dt.timedelta(seconds=1), 10, 300, 5.0) == (5, 0.0)
    assert intake.take(0.0, t0, t0 + dt.timedelta(seconds=0.3), 10, 300, 5.0) == (1, 0.5)
    assert intake.take(10.0, t0, t0 + dt.timedelta(days=1), 1, 300, 5.0) == (1, 299.0)
    assert intake.take(3.0, t0, t0 - dt.timedelta(hours=1), 9, 300, 5.0) == (3, 0.0)


def test_since_is_epoch_or_iso() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert security.parse_since(None, now) is None and security.parse_since(" ", now) is None
    assert security.parse_since("1767225600", now) == now
    assert security.parse_since("2026-01-01T00:00:00Z", now) == now
    assert security.parse_since("2026-01-01T01:00:00+01:00", now) == now
    assert security.parse_since("2026-01-01T01:00:00 01:00", now) == now  # '+' unescaped
    assert security.parse_since("2026-01-01T00:00:00", now) == now  # naive: UTC
    for bad in ("soon", "1e400", "-5", "nan"):
        with pytest.raises(InputError):
            security.parse_since(bad, now)


def test_any_json_detail_within_the_size_is_kept_as_sent(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    detail = {"nul\u0000key": "nul\u0000value", "emoji": "\u2603\U0001f600",
              "nested": [[1, 2.5, None, True], {"deep": {"er": []}}], "big": 2**62}
    send(fleet, "gw-1", [event(detail=detail, what="caf\u00e9 \u2603 denied")])
    (found,) = stored(setup)
    assert found["detail"] == detail and found["what"] == "caf\u00e9 \u2603 denied"
