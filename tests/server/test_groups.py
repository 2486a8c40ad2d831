"""Gateway groups: update windows, settings, tenants kept apart, who may manage them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from edgeward.errors import Conflict, InputError, NotFound, PermissionDenied
from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import AuditEvent, Gateway
from edgeward.server.services import groups
from tests.server.test_releases import NOW, add_gateway, db, people

__all__ = ["db"]


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 25, hour, minute, tzinfo=dt.UTC)


# -- windows -----------------------------------------------------------------------------


def test_windows_open_and_close_and_wrap_past_midnight() -> None:
    assert groups.window_open("", at(3))
    assert groups.window_open("01:00-03:00", at(1)) and groups.window_open("01:00-03:00",
                                                                           at(2, 59))
    assert not groups.window_open("01:00-03:00", at(3)) and not groups.window_open(
        "01:00-03:00", at(0, 59))
    wraps = "22:30-02:00"
    assert all(groups.window_open(wraps, at(h, m)) for h, m in ((22, 30), (23, 59), (0, 0),
                                                                (1, 59)))
    assert not any(groups.window_open(wraps, at(h, m)) for h, m in ((2, 0), (12, 0),
                                                                    (22, 29)))
    cest = dt.timezone(dt.timedelta(hours=2))
    assert groups.window_open("01:00-03:00", dt.datetime(2026, 6, 1, 4, 0, tzinfo=cest))


MINUTE = st.integers(0, 24 * 60 - 1)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@given(MINUTE, MINUTE, MINUTE)
def test_a_window_and_its_complement_cover_the_day_exactly_once(start: int, end: int,
                                                                now: int) -> None:
    if start == end:
        with pytest.raises(InputError):
            groups.check_window(f"{hhmm(start)}-{hhmm(end)}")
        return
    when = at(now // 60, now % 60)
    window, complement = f"{hhmm(start)}-{hhmm(end)}", f"{hhmm(end)}-{hhmm(start)}"
    assert groups.check_window(window) == window
    assert groups.window_open(window, when) != groups.window_open(complement, when)
    assert groups.window_open(window, when) == ((now - start) % 1440 < (end - start) % 1440)


def test_malformed_settings_are_refused() -> None:
    for bad in ({"window": "1:00-3:00"}, {"window": "24:00-01:00"}, {"window": "01:00"},
                {"channel": "nightly"}, {"pinned_version": "../x"}, {"auto_update": "yes"},
                {"colour": "red"}):
        with pytest.raises(InputError):
            groups.check_settings(bad)


# -- the service ----------------------------------------------------------------------


def test_groups_are_created_updated_assigned_and_audited(db: Database) -> None:
    who = people(db)
    hotels = who["hotels/operator"]
    add_gateway(db, "gw-1", hotels.tenant_id)
    with db.transaction() as s:
        group = groups.create(s, hotels, "lobby", {"channel": "beta", "window": "22:00-04:00"},
                              NOW)
        assert (group.channel, group.window, group.auto_update, group.pinned_version) == (
            "beta", "22:00-04:00", True, None)
        groups.assign(s, hotels, "gw-1", "lobby", NOW)
    with db.transaction() as s:
        groups.update(s, hotels, "lobby", {"pinned_version": "1.2.3", "auto_update": False},
                      NOW)
        name, listed = groups.visible(s, hotels)
        assert name == "hotels"
        assert [(g.name, n, g.pinned_version, g.auto_update) for g, n in listed] == [
            ("lobby", 1, "1.2.3", False)]
        assert groups.describe(listed[0][0], name, 1)["ref"] == "hotels/lobby"
    with db.transaction() as s:
        groups.update(s, hotels, "lobby", {"pinned_version": None}, NOW)
        with pytest.raises(InputError):
            groups.update(s, hotels, "lobby", {"channel": None}, NOW)
    with db.transaction() as s, pytest.raises(Conflict):
        groups.create(s, hotels, "lobby", {}, NOW)
    with db.transaction() as s:
        assert groups.find(s, hotels, "lobby").pinned_version is None
        groups.remove(s, hotels, "gw-1", "lobby", NOW)
        with pytest.raises(NotFound):
            groups.remove(s, hotels, "gw-1", "lobby", NOW)
        groups.assign(s, hotels, "gw-1", "lobby", NOW)
        groups.delete(s, hotels, "lobby", NOW)
    with db.transaction() as s:
        gateway = s.execute(select(Gateway).where(Gateway.serial == "gw-1")).scalar_one()
        assert gateway.group_id is None  # back to the default policy
        actions = [e.action for e in s.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == hotels.tenant_id).order_by(AuditEvent.id)).scalars()]
    assert actions == ["group.create", "group.assign", "group.update", "group.update",
                       "group.remove", "group.assign", "group.delete"]


def test_tenants_never_see_each_others_groups_or_gateways(db: Database) -> None:
    who = people(db)
    hotels, other = who["hotels/admin"], who["other/admin"]
    add_gateway(db, "gw-hotel", hotels.tenant_id)
    add_gateway(db, "gw-other", other.tenant_id)
    with db.transaction() as s:
        groups.create(s, hotels, "lobby", {}, NOW)
        groups.create(s, other, "lobby", {"channel": "edge"}, NOW)  # same name, own tenant
    with db.transaction() as s:
        assert [g.channel for g, _ in groups.visible(s, other)[1]] == ["edge"]
        with pytest.raises(NotFound):
            groups.assign(s, other, "gw-hotel", "lobby", NOW)  # not its gateway
        with pytest.raises(NotFound):
            groups.assign(s, hotels, "gw-other", "lobby", NOW)
        with pytest.raises(PermissionDenied):  # naming another tenant needs the platform
            groups.visible(s, other, tenant="hotels")
        with pytest.raises(PermissionDenied):
            groups.update(s, other, "lobby", {"channel": "edge"}, NOW, tenant="hotels")
        assert groups.find(s, hotels, "lobby").channel == "stable"


def test_viewers_cannot_manage_groups_and_the_platform_may_name_a_tenant(db: Database
                                                                           ) -> None:
    who = people(db)
    viewer, platform = who["hotels/viewer"], who["platform/admin"]
    add_gateway(db, "gw-1", viewer.tenant_id)
    with db.transaction() as s:
        for attempt in (lambda: groups.create(s, viewer, "x", {}, NOW),
                        lambda: groups.assign(s, viewer, "gw-1", "x", NOW),
                        lambda: groups.delete(s, viewer, "x", NOW)):
            with pytest.raises(PermissionDenied):
                attempt()
        assert groups.visible(s, viewer) == ("hotels", [])  # reading is fine
    with db.transaction() as s:
        groups.create(s, platform, "canary", {"channel": "candidate"}, NOW, tenant="hotels")
        groups.assign(s, platform, "gw-1", "canary", NOW, tenant="hotels")
        with pytest.raises(NotFound):
            groups.visible(s, platform, tenant="nobody")
    with db.transaction() as s:
        name, listed = groups.visible(s, viewer)
        assert [(g.name, n) for g, n in listed] == [("canary", 1)]


def test_the_group_migration_keeps_existing_rows(empty_database_url: str, tmp_path: Path
                                                 ) -> None:
    """0004 adds gateways.group_id in place: gateways, nonces and alerts survive."""
    database = Database(empty_database_url)
    try:
        config = migrate._config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO gateways (id, serial, model, cert_sha384, cert_pem, record, status,"
                " attestation, attestation_detail, slot, versions, enrolled_at, boot_id,"
                " previous_boot_id) VALUES (1, 'gw-old', 'm', 'f', '', '', 'enrolled',"
                " 'unknown', '', 'a', '{}', :now, '', '')"), {"now": NOW})
            connection.execute(text("INSERT INTO nonces (gateway_id, nonce, issued_at)"
                                    " VALUES (1, 'n', :now)"), {"now": NOW})
            connection.execute(text("INSERT INTO alerts (gateway_id, kind, detail, at)"
                                    " VALUES (1, 'k', 'd', :now)"), {"now": NOW})
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT serial, group_id FROM gateways")).all() == [
                ("gw-old", None)]
            for table in ("nonces", "alerts"):
                assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1  # noqa: S608
    finally:
        database.close()


def test_a_gateway_moved_to_another_tenant_leaves_its_old_tenants_group(db: Database
                                                                       ) -> None:
    from edgeward.server.services import registry

    who = people(db)
    hotels = who["hotels/admin"]
    add_gateway(db, "gw-9", hotels.tenant_id)
    with db.transaction() as s:
        groups.create(s, hotels, "lobby", {}, NOW)
        groups.assign(s, hotels, "gw-9", "lobby", NOW)
    with db.transaction() as s:
        registry.assign(s, who["platform/admin"], "gw-9", "other", NOW)
    with db.transaction() as s:
        gateway = s.execute(select(Gateway).where(Gateway.serial == "gw-9")).scalar_one()
        assert gateway.group_id is None  # the old tenant's group does not follow it
        _, listed = groups.visible(s, hotels)
        assert [(g.name, n) for g, n in listed] == [("lobby", 0)]
