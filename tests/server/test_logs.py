"""Central logs over real HTTPS, on SQLite and PostgreSQL: gateways ship batches (mutual
TLS), each stored once; operators of the gateway's tenant search them by gateway, app,
time and words (FTS5 / PostgreSQL full text, the same answers), read those around an
alert, and old lines are pruned out of the word index too."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from edgeward.device.telemetry.logship import LogShipper
from edgeward.server.db.models import Gateway
from edgeward.server.db.monitoring import LogLine
from edgeward.server.services import alerts, logstore
from edgeward.server.services.logquota import LogQuota
from tests.server.harness import Fleet
from tests.server.test_updates_api import Setup, prepare


def line(words: str, at: float, app: str = "miner", level: str = "info",
         source: str = "app") -> dict[str, Any]:
    return {"time": at, "app": app, "source": source, "level": level, "text": words}


def batch_id() -> str:
    return os.urandom(16).hex()


def ship(fleet: Fleet, serial: str, lines: list[dict[str, Any]], batch: str | None = None,
         status: int = 200) -> dict[str, Any]:
    with fleet.gateway(serial) as gw:
        answer = gw.post("/v1/gateway/logs", json={"batch": batch or batch_id(),
                                                   "lines": lines})
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def found(setup: Setup, query: str = "", who: str = "hotels/eyes", status: int = 200
          ) -> Any:
    with setup.as_(who) as client:
        answer = client.get("/v1/logs" + query)
    assert answer.status_code == status, answer.text
    return answer.json()


def texts(setup: Setup, query: str = "", who: str = "hotels/eyes") -> list[str]:
    return [x["text"] for x in found(setup, query, who)["lines"]]


def fleet_logs(fleet: Fleet) -> tuple[Setup, float]:
    """gw-1 runs miner and hvac, gw-2 miner; lines over the last hour."""
    setup = prepare(fleet)
    now = time.time()
    ship(fleet, "gw-1", [
        line("miner started pool stratum+tcp://198.51.100.7:3333", now - 3000),
        line("hashrate 12.5 MH/s, accepted shares 4", now - 1200),
        line("temperature sensor read 21.5 C", now - 1100, app="hvac"),
        line("ERROR connection refused by broker.local", now - 900, app="hvac",
             level="error"),
        line("update check failed: connection refused", now - 600, app="", source="agent",
             level="warning"),
        line("miner: Near the limit of CPU quota", now - 300),
        line('quoted "shadow" and AND( or NEAR( and * stars', now - 120)])
    ship(fleet, "gw-2", [line("hashrate 3.1 MH/s", now - 60),
                         line("Connection refused again", now - 30, app="hvac")])
    return setup, now


def test_lines_are_stored_and_searchable(fleet: Fleet) -> None:
    setup, now = fleet_logs(fleet)
    every = found(setup)
    assert every["alert"] is None
    newest = every["lines"]
    assert [(x["gateway"], x["app"]) for x in newest[:3]] == [
        ("gw-2", "hvac"), ("gw-2", "miner"), ("gw-1", "miner")]
    assert len(newest) == 9
    agent = next(x for x in newest if x["source"] == "agent")
    assert agent == {"id": agent["id"], "gateway": "gw-1", "app": "", "source": "agent",
                     "level": "warning", "text": "update check failed: connection refused",
                     "time": agent["time"]}
    assert abs(dt.datetime.fromisoformat(agent["time"]).timestamp() - (now - 600)) < 0.01
    assert texts(setup, "?gateway=gw-2") == ["Connection refused again", "hashrate 3.1 MH/s"]
    assert texts(setup, "?gateway=gw-1&app=hvac") == [
        "ERROR connection refused by broker.local", "temperature sensor read 21.5 C"]
    assert len(texts(setup, f"?since={now - 1000}")) == 6
    until = dt.datetime.fromtimestamp(now - 1000, dt.UTC).isoformat().replace("+00:00", "Z")
    assert texts(setup, f"?until={until}&gateway=gw-1") == [
        "temperature sensor read 21.5 C", "hashrate 12.5 MH/s, accepted shares 4",
        "miner started pool stratum+tcp://198.51.100.7:3333"]
    # words: the same answers from FTS5 and from PostgreSQL's full text
    assert texts(setup, "?q=refused") == [
        "Connection refused again", "update check failed: connection refused",
        "ERROR connection refused by broker.local"]
    assert texts(setup, "?q=connection%20REFUSED&gateway=gw-1") == [
        "update check failed: connection refused", "ERROR connection refused by broker.local"]
    assert texts(setup, "?q=hashrate&app=miner") == ["hashrate 3.1 MH/s",
                                                     "hashrate 12.5 MH/s, accepted shares 4"]
    assert texts(setup, "?q=hash*") == ["hashrate 3.1 MH/s",
                                        "hashrate 12.5 MH/s, accepted shares 4"]
    assert texts(setup, "?q=temp*%20sensor") == ["temperature sensor read 21.5 C"]
    assert texts(setup, "?q=refuse") == []  # a word, not a part of one, unless asked
    # paging on
    first = found(setup, "?limit=4")["lines"]
    rest = found(setup, f"?before={first[-1]['id']}")["lines"]
    assert [x["id"] for x in first + rest] == [x["id"] for x in newest]
    with setup.as_("hotels/eyes") as viewer:
        assert viewer.get("/v1/logs?since=yesterday").status_code == 400
        assert "until" in viewer.get("/v1/logs?until=soon").json()["error"]
        assert viewer.get("/v1/logs?limit=1001").status_code == 422
        assert viewer.get("/v1/logs?q=a%00b").status_code == 422
        assert viewer.get("/v1/logs?gateway=../x").status_code == 422
        assert viewer.get("/v1/logs?alert=1&gateway=gw-1").status_code == 400
        assert viewer.get("/v1/logs?before=999999").status_code == 404


HOSTILE = ['"', '""', '"shadow', "NEAR(", "AND(", "*", "**", "-", "^", "col:umn", "a OR",
           "NOT", "(", ")", "'", "\\", "%", "\u2028", "'; DROP TABLE log_lines; --",
           "NEAR(a b, 5)", "\"a\" AND \"b\"", "x" * 200]


def test_hostile_search_words_never_break_the_query(fleet: Fleet) -> None:
    setup, _ = fleet_logs(fleet)
    with setup.as_("hotels/eyes") as viewer:
        for words in HOSTILE:
            answer = viewer.get("/v1/logs", params={"q": words})
            assert answer.status_code == 200, (words, answer.text)
    assert texts(setup, "?q=%22shadow%22") == ['quoted "shadow" and AND( or NEAR( and * '
                                               'stars']
    near = texts(setup, "?q=NEAR(")  # the word "near", not FTS5's operator
    assert near == ['quoted "shadow" and AND( or NEAR( and * stars',
                    "miner: Near the limit of CPU quota"]
    assert texts(setup, "?q=*") == [] and texts(setup, "?q=%22") == []
    assert texts(setup, "?q=stars%20*") == ['quoted "shadow" and AND( or NEAR( and * stars']
    assert len(texts(setup)) == 9  # all still there


def test_a_batch_sent_twice_is_stored_once(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    now = time.time()
    lines = [line(f"line {i}", now - 10 + i) for i in range(5)]
    batch = batch_id()
    assert ship(fleet, "gw-1", lines, batch) == {"stored": 5, "duplicate": False}
    assert ship(fleet, "gw-1", lines, batch) == {"stored": 0, "duplicate": True}
    assert len(texts(setup)) == 5
    twin = batch_id()
    answers: list[dict[str, Any]] = []

    def send() -> None:
        answers.append(ship(fleet, "gw-1", lines, twin))

    both = [threading.Thread(target=send) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert sorted(a["stored"] for a in answers) == [0, 5]
    assert len(texts(setup)) == 10
    assert ship(fleet, "gw-1", [], batch_id()) == {"stored": 0, "duplicate": False}


def test_a_batch_over_the_quota_waits_and_a_loop_is_alerted(fleet: Fleet) -> None:
    """A gateway may ship ``burst`` lines at once, then ``rate`` a second: a batch the
    quota cannot cover is refused whole (429, Retry-After), nothing of it kept, and taken
    when sent again later under the same id; pressing on for ten minutes is alerted."""
    setup = prepare(fleet)
    state = fleet.server.state
    start = dt.datetime.now(dt.UTC)
    clock = {"now": start}
    state.clock = lambda: clock["now"]
    state.log_quota = LogQuota(burst=8, rate=0.5)
    now = time.time()
    assert ship(fleet, "gw-1", [line(f"first {i}", now) for i in range(5)]) == {
        "stored": 5, "duplicate": False}
    flood, batch = [line(f"loop {i}", now) for i in range(5)], batch_id()
    with fleet.gateway("gw-1") as gw:
        refused = gw.post("/v1/gateway/logs", json={"batch": batch, "lines": flood})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "4"
    assert "gw-1 is over its log quota (8 lines at once, then 0.5 a second)" in \
        refused.json()["error"]
    assert texts(setup, "?gateway=gw-1&q=loop") == []  # nothing of it kept
    assert ship(fleet, "gw-2", [line("its own quota", now)])["stored"] == 1
    clock["now"] = start + dt.timedelta(seconds=4)  # two lines' worth refilled: five now
    assert ship(fleet, "gw-1", flood, batch) == {"stored": 5, "duplicate": False}
    assert ship(fleet, "gw-1", flood, batch) == {"stored": 0, "duplicate": True}
    assert sorted(texts(setup, "?gateway=gw-1&q=loop")) == [f"loop {i}" for i in range(5)]
    with setup.as_("hotels/eyes") as viewer:
        assert not [a for a in viewer.get("/v1/alerts").json() if a["kind"] == "logs.flood"]
    for minute in range(1, 12):  # an app in a loop: refused again and again
        clock["now"] = start + dt.timedelta(minutes=minute)
        ship(fleet, "gw-1", [line("loop", now)] * 8)
        ship(fleet, "gw-1", [line("loop", now)] * 8, status=429)
    with setup.as_("hotels/eyes") as viewer:
        raised = [a for a in viewer.get("/v1/alerts").json() if a["kind"] == "logs.flood"]
    assert len(raised) == 1 and raised[0]["gateway"] == "gw-1"  # one per quiet window
    assert "for 10 minutes: an app logging in a loop" in raised[0]["detail"]


def test_the_agent_shipper_resends_under_the_same_id(fleet: Fleet, tmp_path: Path) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    folder = tmp_path / "apps" / "miner" / "logs"
    folder.mkdir(parents=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    (folder / "main.log").write_text(f"{stamp} out mining started\n"
                                     f"{stamp} err WARNING: CPU quota reached\n")
    shipper = LogShipper(tmp_path / "apps", tmp_path / "logship.json")
    shipper.ship_agent("app miner: started 1.0")
    with fleet.gateway("gw-1") as gw:
        batch = shipper.take()
        assert gw.post("/v1/gateway/logs", json=batch.body()).json()["stored"] == 3
        again = shipper.take()  # the answer was lost: sent again
        assert gw.post("/v1/gateway/logs", json=again.body()).json() == {
            "stored": 0, "duplicate": True}
        shipper.sent(again)
        assert shipper.take().lines == []
    stored = found(setup)["lines"]
    assert [(x["app"], x["source"], x["level"], x["text"]) for x in stored] == [
        ("", "agent", "info", "app miner: started 1.0"),
        ("miner", "app", "warning", "WARNING: CPU quota reached"),
        ("miner", "app", "info", "mining started")]


BAD: list[tuple[str, Any]] = [
    ("level", "fatal"), ("source", "kernel"), ("text", ""), ("text", "x" * 2001),
    ("text", "two\nlines"), ("text", "escape \x1b[31m"), ("text", "c1 \x9b"),
    ("text", "half a pair \ud800"), ("time", -1), ("time", "now"), ("time", 1e300),
    ("app", "Bad App"), ("colour", "red"), ("text", 5)]


def test_malformed_batches_are_422_and_store_nothing(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    good = line("fine", time.time())
    with fleet.gateway("gw-1") as gw:
        def post(body: Any) -> int:
            answer = gw.post("/v1/gateway/logs", content=json.dumps(body),
                             headers={"content-type": "application/json"})
            assert set(answer.json()) == {"error"}, answer.text
            return answer.status_code

        for field, value in BAD:
            body = {"batch": batch_id(), "lines": [good, {**good, field: value}]}
            assert post(body) == 422, (field, value)
        wrong: list[Any] = [{"batch": "XYZ", "lines": [good]},
                            {"batch": batch_id().upper(), "lines": [good]},
                            {"batch": batch_id(), "lines": [good], "extra": 1},
                            {"batch": batch_id()}, {"lines": [good]}, [good],
                            {"batch": batch_id(), "lines": [good] * 1001}]
        for body in wrong:
            assert post(body) == 422, body
        huge = {"batch": batch_id(), "lines": [{**good, "text": "\u00e9" * 2000}] * 1000}
        assert post(huge) == 413  # 12 MB as JSON: refused before it is read
    assert found(setup)["lines"] == []
    ship(fleet, "gw-2", [good], status=401)  # not enrolled
    with fleet.operator(setup.tokens["hotels/ops"]) as ops:  # a token is no certificate
        assert ops.post("/v1/gateway/logs", json={"batch": batch_id(), "lines": []}
                        ).status_code == 401


def test_tenants_see_only_their_own_logs(fleet: Fleet) -> None:
    setup, _ = fleet_logs(fleet)
    assert found(setup, who="other/ops")["lines"] == []
    assert found(setup, "?gateway=gw-1&q=refused", who="other/ops")["lines"] == []
    assert found(setup, who="platform")["lines"] == []  # the unassigned pool's: none
    mine = found(setup)["lines"]
    found(setup, f"?before={mine[0]['id']}", who="other/ops", status=404)


def raise_alert(fleet: Fleet, serial: str, kind: str, at: dt.datetime, app: str = "") -> int:
    with fleet.server.state.db.transaction() as session:
        gateway = session.execute(select(Gateway).where(Gateway.serial == serial)
                                  ).scalar_one()
        alert = alerts.raise_alert(session, gateway, kind, f"{kind} on {serial}", at,
                                   severity="high", app=app)
        assert alert is not None
        session.flush()
        return int(alert.id)


def test_the_lines_around_an_alert(fleet: Fleet) -> None:
    setup = prepare(fleet)
    now = time.time()
    at = now - 600  # the alert, ten minutes ago
    ship(fleet, "gw-1", [
        line("too early", at - 1200), line("hashrate 1 MH/s", at - 600),
        line("hvac is fine", at - 300, app="hvac"),
        line("cpu quota hit", at - 30, source="app", level="error"),
        line("agent: sampled cpu 97%", at - 10, app="", source="agent"),
        line("hashrate 90 MH/s", at + 60), line("too late", at + 300)])
    ship(fleet, "gw-2", [line("other gateway", at)])
    alert = raise_alert(fleet, "gw-1", "cpu.anomaly",
                        dt.datetime.fromtimestamp(at, dt.UTC), app="miner")
    around = found(setup, f"?alert={alert}")
    assert around["alert"]["id"] == alert and around["alert"]["kind"] == "cpu.anomaly"
    assert around["alert"]["gateway"] == "gw-1" and around["alert"]["app"] == "miner"
    assert [x["text"] for x in around["lines"]] == [  # oldest first, its app and the agent
        "hashrate 1 MH/s", "cpu quota hit", "agent: sampled cpu 97%", "hashrate 90 MH/s"]
    whole = raise_alert(fleet, "gw-1", "cert.cloned", dt.datetime.fromtimestamp(at, dt.UTC))
    assert [x["text"] for x in found(setup, f"?alert={whole}")["lines"]] == [
        "hashrate 1 MH/s", "hvac is fine", "cpu quota hit", "agent: sampled cpu 97%",
        "hashrate 90 MH/s"]
    assert [x["text"] for x in found(setup, f"?alert={whole}&limit=1")["lines"]] == [
        "agent: sampled cpu 97%", "hashrate 90 MH/s"]  # the nearest on each side
    found(setup, f"?alert={alert}", who="other/ops", status=404)
    found(setup, "?alert=999999", status=404)


def test_prune_removes_old_lines_from_the_word_index(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    now = time.time()
    ship(fleet, "gw-1", [line(f"ancient beacon {i}", now - 3 * 86400 + i) for i in range(7)]
         + [line("fresh beacon", now - 60)])
    assert len(texts(setup, "?q=beacon")) == 8
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with fleet.server.state.db.transaction() as session:
        assert logstore.prune(session, cutoff, batch=3) == 7
    assert texts(setup, "?q=beacon") == ["fresh beacon"]
    assert texts(setup, "?q=ancient") == []
    with fleet.server.state.db.transaction() as session:
        assert logstore.prune(session, cutoff) == 0
        if session.get_bind().dialect.name == "sqlite":  # the index agrees with the table
            session.execute(text("INSERT INTO log_lines_fts(log_lines_fts) "
                                 "VALUES ('integrity-check')"))
            count = session.execute(text("SELECT count(*) FROM log_lines_fts "
                                         "WHERE log_lines_fts MATCH 'beacon'")).scalar()
            assert count == 1


def test_postgresql_searches_words_through_the_gin_index(fleet: Fleet) -> None:
    with fleet.server.state.db.transaction() as session:
        dialect = session.get_bind().dialect
        if dialect.name != "postgresql":
            pytest.skip("SQLite's words are in their own FTS5 table: no other index")
        session.execute(text("SET LOCAL enable_seqscan = off"))
        query = select(LogLine.id).where(
            logstore.matching(session, logstore.words("connection refus*")))
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(session.execute(text("EXPLAIN " + sql)).scalars())
    assert "ix_log_lines_fulltext" in plan, plan


def test_the_words_a_person_types() -> None:
    assert logstore.words('conn* "refused" NEAR( * ** -') == [
        ("conn", True), ('"refused"', False), ("NEAR(", False)]
    assert logstore.fts5_query(logstore.words('say "hi" conn*')) == (
        '"say" """hi""" "conn"*')
    assert logstore.words("a_b* x-y*") == [("a_b*", False), ("x-y*", False)]
