"""Published OS releases: the table mirrors the signed ``os`` role, history kept.

Also the helpers the other update tests share (a migrated database, principals
of two tenants and the platform, gateways inserted as enrolment would).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from edgeward.errors import InputError
from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import Gateway, OsRelease
from edgeward.server.services import releases, tenants
from edgeward.server.services.authz import PLATFORM_TENANT, Principal, Role
from edgeward.server.services.releases import ReleaseEntry, TargetRef

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
MODEL = "ew-gw1"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.close()


def ref(path: str) -> TargetRef:
    return TargetRef(path, hashlib.sha384(path.encode()).hexdigest(), len(path) * 1000)


def entry(version: str, channel: str = "stable", security_version: int = 1,
          model: str = MODEL, delta_base: str | None = None) -> ReleaseEntry:
    base = f"os/{model}/{version}"
    delta = ref(f"{base}/rootfs.delta-{delta_base}.zst") if delta_base else None
    return ReleaseEntry(model, version, channel, security_version, ref(f"{base}/kernel.img"),
                        ref(f"{base}/rootfs.img"), delta, delta_base,
                        hashlib.sha384(delta_base.encode()).hexdigest() if delta_base else None)


def people(db: Database) -> dict[str, Principal]:
    """platform/admin, and admin, operator, viewer of tenants 'hotels' and 'other'."""
    found: dict[str, Principal] = {}
    with db.transaction() as s:
        for name in (PLATFORM_TENANT, "hotels", "other"):
            tenant = tenants.create_tenant(s, name, NOW)
            for role in Role:
                user = tenants.create_user(s, tenant.id, role.value, role, NOW)
                found[f"{name}/{role.value}"] = Principal(user.id, user.name, tenant.id,
                                                          name, role)
    return found


def add_gateway(db: Database, serial: str, tenant_id: int | None = None, model: str = MODEL,
                running: str | None = None) -> int:
    """A gateway row as enrolment leaves it (and a heartbeat naming its rootfs)."""
    with db.transaction() as s:
        gateway = Gateway(serial=serial, model=model, tenant_id=tenant_id,
                          cert_sha384=hashlib.sha384(serial.encode()).hexdigest(),
                          cert_pem="", record="", status="enrolled", attestation="unknown",
                          attestation_detail="", slot="a",
                          versions={"rootfs": running} if running else {},
                          enrolled_at=NOW)
        s.add(gateway)
        s.flush()
        return gateway.id


def rows(db: Database) -> dict[str, OsRelease]:
    with db.transaction() as s:
        return {r.version: r for r in s.execute(select(OsRelease)).scalars()}


def test_sync_inserts_in_publish_order_and_keeps_history(db: Database) -> None:
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0")], NOW)
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "beta", 2)], NOW)
    with db.transaction() as s:  # 1.0.0 dropped from the signed role: yanked, not deleted
        releases.sync(s, [entry("1.1.0", "beta", 2), entry("0.9.0", "edge")], NOW)
    found = rows(db)
    assert [found[v].seq for v in ("1.0.0", "1.1.0", "0.9.0")] == [1, 2, 3]
    assert found["1.0.0"].yanked_at is not None
    assert found["1.1.0"].yanked_at is None and found["1.1.0"].security_version == 2
    assert found["1.1.0"].kernel_target == "os/ew-gw1/1.1.0/kernel.img"
    assert found["1.1.0"].kernel_length == len("os/ew-gw1/1.1.0/kernel.img") * 1000
    with db.transaction() as s:  # it comes back: un-yanked, same number
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "beta", 2), entry("0.9.0", "edge")],
                      NOW)
    again = rows(db)
    assert again["1.0.0"].yanked_at is None and again["1.0.0"].seq == 1


def test_promotion_and_delta_are_updated(db: Database) -> None:
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "candidate", 1)], NOW)
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "stable", 1, delta_base="1.0.0")],
                      NOW)
    promoted = rows(db)["1.1.0"]
    assert promoted.channel == "stable" and promoted.seq == 2
    assert promoted.delta_target == "os/ew-gw1/1.1.0/rootfs.delta-1.0.0.zst"
    assert promoted.delta_base_version == "1.0.0"
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "stable", 1)], NOW)
    assert rows(db)["1.1.0"].delta_target is None


def test_a_first_sync_numbers_by_security_then_natural_version(db: Database) -> None:
    with db.transaction() as s:
        releases.sync(s, [entry("1.10.0", security_version=2), entry("1.9.0", security_version=2),
                          entry("1.2.0", security_version=1)], NOW)
    found = rows(db)
    assert found["1.2.0"].seq < found["1.9.0"].seq < found["1.10.0"].seq


def test_sync_refuses_malformed_entries_and_writes_nothing(db: Database) -> None:
    for bad in (entry("1.0.0", channel="nightly"), entry("../1"),
                entry("1.0.0", model="Bad Model")):
        with pytest.raises(InputError), db.transaction() as s:
            releases.sync(s, [entry("2.0.0"), bad], NOW)
    assert rows(db) == {}


def test_listing_filters_by_model_and_channel_and_hides_yanked(db: Database) -> None:
    who = people(db)
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "candidate"), entry("1.2.0", "edge"),
                          entry("3.0.0", model="ew-gw2"), entry("0.1.0", "beta")], NOW)
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "candidate"), entry("1.2.0", "edge"),
                          entry("3.0.0", model="ew-gw2")], NOW)
    viewer = who["hotels/viewer"]
    with db.transaction() as s:
        listed = [r.version for r in releases.listed(s, viewer, model=MODEL)]
        assert listed == ["1.2.0", "1.1.0", "1.0.0"]  # newest first, yanked 0.1.0 hidden
        assert [r.version for r in releases.listed(s, viewer, MODEL, "candidate")] == [
            "1.1.0", "1.0.0"]
        assert "0.1.0" in [r.version for r in releases.listed(s, viewer, include_yanked=True)]
        described = releases.describe(releases.listed(s, viewer, "ew-gw2")[0])
        assert described["rootfs"]["path"] == "os/ew-gw2/3.0.0/rootfs.img"
        with pytest.raises(InputError):
            releases.listed(s, viewer, channel="nightly")


def test_channel_order_and_natural_versions() -> None:
    assert [releases.rank(c) for c in releases.CHANNELS] == [0, 1, 2, 3]
    with pytest.raises(InputError):
        releases.rank("nightly")
    assert sorted(["1.10.0", "1.9.0", "1.9.1", "2.0"], key=releases.version_key) == [
        "1.9.0", "1.9.1", "1.10.0", "2.0"]
