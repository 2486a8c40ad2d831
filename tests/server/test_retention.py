"""Retention on both databases: points past two days become 5-minute roll-ups (count,
mean, low, high kept), those past thirty days hourly ones, hourly past a year go; a
chart over the whole range reads raw points and roll-ups alike; old receipts go."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import Gateway, Tenant, User
from edgeward.server.db.monitoring import IngestReceipt, MetricPoint, MetricRollup
from edgeward.server.services import metricstore, retention
from edgeward.server.services.authz import Principal, Role

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.close()


def _setup(db: Database) -> Principal:
    with db.transaction() as session:
        tenant = Tenant(name="hotels")
        session.add(tenant)
        session.flush()
        user = User(tenant_id=tenant.id, name="ops", role="admin")
        gateway = Gateway(tenant_id=tenant.id, serial="gw-1", model="m", cert_sha384="0" * 96,
                          cert_pem="", record="")
        session.add_all([user, gateway])
        session.flush()
        ages = [dt.timedelta(days=400), dt.timedelta(days=40), dt.timedelta(days=3),
                dt.timedelta(hours=1)]
        for age in ages:  # ten points a minute apart at each age: 10, 20, ... 100
            for i in range(10):
                session.add(MetricPoint(gateway_id=gateway.id, metric="cpu_percent", app="",
                                        at=NOW - age + dt.timedelta(seconds=30 * i),
                                        value=10.0 * (i + 1)))
        session.add_all([IngestReceipt(gateway_id=gateway.id, batch="a" * 32, kind="t",
                                       received_at=NOW - dt.timedelta(days=8)),
                         IngestReceipt(gateway_id=gateway.id, batch="b" * 32, kind="t",
                                       received_at=NOW)])
        return Principal(user.id, "ops", tenant.id, "hotels", Role.ADMIN)


def test_old_points_are_rolled_up_and_the_oldest_dropped(db: Database) -> None:
    who = _setup(db)
    done = retention.tidy(db, NOW)
    assert done["points"] == 30 and done["fine"] >= 2 and done["receipts"] == 1
    assert retention.tidy(db, NOW)["points"] == 0  # nothing left to do
    with db.transaction() as session:
        assert session.execute(select(func.count()).select_from(MetricPoint)).scalar_one() \
            == 10
        rollups = session.execute(select(MetricRollup).order_by(MetricRollup.start)
                                  ).scalars().all()
        assert {r.resolution for r in rollups} == {300, 3600}
        assert sum(r.count for r in rollups) == 20  # the year-old ten are gone
        fine = [r for r in rollups if r.resolution == 300]
        assert sum(r.count for r in fine) == 10
        assert min(r.low for r in fine) == 10.0 and max(r.high for r in fine) == 100.0
        assert sum(r.mean * r.count for r in fine) == pytest.approx(550.0)
        assert session.execute(select(func.count()).select_from(IngestReceipt)
                               ).scalar_one() == 1
        chart = metricstore.series(session, who, "gw-1", "cpu_percent", "",
                                   NOW - dt.timedelta(days=60), NOW, points=120)
    assert sum(p["count"] for p in chart["points"]) == 30  # roll-ups and raw alike
    assert max(p["high"] for p in chart["points"]) == 100.0
