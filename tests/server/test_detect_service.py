"""The detectors as the server runs them, on both databases: a cohort whose load rises
at once is one notice, not an alert per gateway; a gateway that just rebooted into a
new release learns its new level; an operator's rule fires after its duration; a
listening port the cohort shares is not news, one only this gateway opens is."""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import Alert, Gateway, Tenant
from edgeward.server.db.monitoring import AlertRule, DetectorState, MetricPoint
from edgeward.server.services import telemetry
from edgeward.server.services.cohorts import Cohorts

START = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
NOW = START + dt.timedelta(days=1)  # the server's clock: every report is in its past

ANY = "0.0.0.0"  # noqa: S104 (an address in a report, not a bind)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    with database.transaction() as session:
        tenant = Tenant(name="hotels")
        session.add(tenant)
        session.flush()
        for n in range(6):
            session.add(Gateway(tenant_id=tenant.id, serial=f"gw-{n}", model="ew-gw1",
                                cert_sha384=f"{n:096x}", cert_pem="", record=""))
    yield database
    database.close()


def report(at: dt.datetime, cpu: float, boot: str = "a" * 32,
           listening: tuple[telemetry.Listener, ...] = ()) -> telemetry.Report:
    return telemetry.Report(at.timestamp(), 30.0, boot, {"cpu_percent": cpu},
                            {"hvac": {"cpu_percent": cpu / 2}}, listening)


def send(db: Database, cohorts: Cohorts, serial: str, reports: list[telemetry.Report]
         ) -> int:
    with db.transaction() as session:
        gateway = session.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one()
        answer = telemetry.ingest(session, cohorts, gateway, os.urandom(16).hex(), reports, NOW)
    return int(answer["alerts"])  # type: ignore[call-overload]


def alerts(db: Database) -> list[tuple[str | None, str, str]]:
    with db.transaction() as session:
        rows = session.execute(select(Alert, Gateway.serial).outerjoin(
            Gateway, Alert.gateway_id == Gateway.id).order_by(Alert.id)).all()
        return [(serial, a.kind, a.severity) for a, serial in rows]


def settle(db: Database, cohorts: Cohorts, rng: random.Random, minutes: int = 60) -> None:
    """Every gateway reports a quiet hour, interleaved as a fleet does."""
    for i in range(minutes * 2):
        at = START + dt.timedelta(seconds=30 * i)
        for n in range(6):
            send(db, cohorts, f"gw-{n}", [report(at, rng.gauss(10, 1.5))])


def test_a_cohort_rising_together_is_one_notice_and_a_miner_inside_it_an_alert(
        db: Database) -> None:
    rng, cohorts = random.Random(7), Cohorts()
    settle(db, cohorts, rng)
    assert alerts(db) == []
    busy = START + dt.timedelta(hours=1)
    for i in range(6):  # the busy hour: every gateway of the cohort at 45%
        for n in range(6):
            send(db, cohorts, f"gw-{n}", [report(busy + dt.timedelta(seconds=30 * i),
                                                 rng.gauss(45, 1.5))])
    raised = alerts(db)
    assert sorted(k for _, k, _ in raised) == ["cohort-shift.app/hvac/cpu_percent",
                                               "cohort-shift.cpu_percent"]
    assert all(serial is None and severity == "low" for serial, _, severity in raised)
    at = busy + dt.timedelta(minutes=3)
    for i in range(2):  # one of them starts mining while the others stay busy
        for n in range(6):
            cpu = 97.0 if n == 3 else rng.gauss(45, 1.5)
            send(db, cohorts, f"gw-{n}", [report(at + dt.timedelta(seconds=30 * i), cpu)])
    assert ("gw-3", "anomaly.cpu_percent", "high") in alerts(db)
    assert not any(s not in (None, "gw-3") for s, _, _ in alerts(db))


def test_a_reboot_into_a_new_release_is_learnt_not_alerted(db: Database) -> None:
    rng, cohorts = random.Random(8), Cohorts()
    settle(db, cohorts, rng, minutes=30)
    after = START + dt.timedelta(minutes=30)
    reports = [report(after + dt.timedelta(seconds=30 * i), rng.gauss(30, 1.5), boot="b" * 32)
               for i in range(60)]
    assert send(db, cohorts, "gw-0", reports) == 0
    assert alerts(db) == []
    with db.transaction() as session:
        stored = session.execute(select(MetricPoint).where(
            MetricPoint.metric == "cpu_percent", MetricPoint.app == "")).scalars().all()
    assert len(stored) == 6 * 60 + 60


def test_an_operators_rule_fires_after_its_duration(db: Database) -> None:
    cohorts = Cohorts()
    with db.transaction() as session:
        tenant = session.execute(select(Tenant)).scalar_one()
        session.add(AlertRule(tenant_id=tenant.id, name="hvac-hot", metric="cpu_percent",
                              app="hvac", op=">", threshold=4.0, duration=120,
                              severity="medium", created_by="ops", created_at=NOW))
    at = [START + dt.timedelta(seconds=30 * i) for i in range(10)]
    assert send(db, cohorts, "gw-1", [report(t, 10.0) for t in at[:4]]) == 0  # 90 s
    assert send(db, cohorts, "gw-1", [report(at[4], 10.0)]) == 1  # 120 s: fires
    assert send(db, cohorts, "gw-1", [report(t, 10.0) for t in at[5:]]) == 0  # once
    assert ("gw-1", "rule.hvac-hot", "medium") in alerts(db)


def test_a_port_the_cohort_shares_is_not_news_and_one_only_this_gateway_opens_is(
        db: Database) -> None:
    cohorts = Cohorts()
    ssh = telemetry.Listener("tcp", ANY, 22, "sshd")
    for n in range(6):
        send(db, cohorts, f"gw-{n}", [report(START + dt.timedelta(seconds=30 * i), 10.0,
                                            listening=(ssh,)) for i in range(25)])
    later = START + dt.timedelta(minutes=20)
    back = telemetry.Listener("tcp", ANY, 4444, "nc", "hvac")
    assert send(db, cohorts, "gw-2", [report(later, 10.0, listening=(ssh, back))]) == 1
    assert alerts(db) == [("gw-2", "new-listen", "high")]


def test_a_large_cohorts_level_and_prior_are_reused_a_small_ones_exact() -> None:
    cohorts = Cohorts()
    for n in range(3):
        cohorts.record("small", f"g{n}", 100.0, {"cpu_percent": 10.0 * (n + 1)})
        cohorts.learnt("small", f"g{n}", "cpu_percent", 10.0 * (n + 1))
    cohorts.record("small", "g3", 100.0, {"cpu_percent": 90.0})
    assert cohorts.level("small", "cpu_percent", "g3", 101.0) == 20.0  # without g3
    assert cohorts.level("small", "cpu_percent", "g0", 101.0) == 30.0  # without g0
    for n in range(30):
        cohorts.record("large", f"g{n}", 100.0, {"cpu_percent": float(n)})
        cohorts.learnt("large", f"g{n}", "cpu_percent", float(n))
    first = cohorts.level("large", "cpu_percent", "g0", 101.0)
    assert first == 14.5
    for n in range(10):  # a third of the cohort jumps
        cohorts.record("large", f"g{n}", 102.0, {"cpu_percent": 1000.0})
    assert cohorts.level("large", "cpu_percent", "g1", 103.0) == first  # reused for 5 s
    assert cohorts.level("large", "cpu_percent", "g1", 107.0) == 24.5  # then recomputed
    prior = cohorts.prior("large", "cpu_percent", "g0")
    assert prior is not None and prior.median == 14.5
    cohorts.learnt("large", "g5", "cpu_percent", 500.0)
    assert cohorts.prior("large", "cpu_percent", "g0") == prior  # reused for a minute
    assert cohorts.prior("small", "app/x/cpu_percent", "g0") is not None  # the default


def test_two_devices_with_one_identity_are_a_clone_not_a_gateway_forever_rebooting(
        db: Database) -> None:
    rng, cohorts = random.Random(9), Cohorts()
    settle(db, cohorts, rng, minutes=20)  # every gateway has its level, boot "a" * 32
    at = START + dt.timedelta(minutes=20)
    trail = [report(at + dt.timedelta(seconds=15 * i), rng.gauss(10, 1.5),
                    boot=("b" if i % 2 else "a") * 32) for i in range(8)]
    send(db, cohorts, "gw-4", trail)
    assert alerts(db) == [("gw-4", "cloned-identity", "high")]
    mined = [report(at + dt.timedelta(minutes=3, seconds=30 * i), 97.0,
                    boot=("b" if i % 2 else "a") * 32) for i in range(2)]
    send(db, cohorts, "gw-4", mined)  # not explained away as a fresh boot
    assert ("gw-4", "anomaly.cpu_percent", "high") in alerts(db)


def test_a_detector_state_that_no_longer_reads_starts_afresh(db: Database) -> None:
    cohorts = Cohorts()
    send(db, cohorts, "gw-1", [report(START, 10.0)])
    with db.transaction() as session:
        for row in session.execute(select(DetectorState)).scalars():
            row.state = {"baseline": "garbled"}
    assert send(db, cohorts, "gw-1", [report(START + dt.timedelta(seconds=30), 10.0)]) == 0
    with db.transaction() as session:
        states = session.execute(select(DetectorState)).scalars().all()
        assert all(isinstance(s.state["baseline"], dict) for s in states)
