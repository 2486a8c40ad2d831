"""Migration 0006 (security events, app status, modes, profiles) upgrades a populated
0005 database on SQLite and PostgreSQL, keeping every row, and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, inspect, text

from edgeward.server.db import migrate
from edgeward.server.db.engine import Database

NEW = {"security_events", "event_intake", "gateway_apps", "app_modes", "app_profiles"}
KEPT = ("tenants", "gateways", "nonces", "alerts", "gateway_groups", "app_assignments",
        "gateway_updates", "update_events", "audit_events")


def _to(db: Database, revision: str, down: bool = False) -> None:
    config = migrate._config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _populate(connection: Connection) -> None:
    statements = [
        "INSERT INTO tenants (id, name, created_at) VALUES (1, 'hotels', :now)",
        "INSERT INTO gateway_groups (id, tenant_id, name, channel, \"window\", auto_update, "
        "created_at) VALUES (1, 1, 'lobby', 'stable', '', true, :now)",
        "INSERT INTO gateways (id, tenant_id, serial, model, cert_sha384, cert_pem, record, "
        "status, attestation, attestation_detail, slot, versions, enrolled_at, boot_id, "
        "previous_boot_id, group_id) VALUES (1, 1, 'gw-1', 'ew-gw1', 'ab', 'pem', 'rec', "
        "'enrolled', 'attested', '', 'a', '{}', :now, '', '', 1)",
        "INSERT INTO nonces (id, gateway_id, nonce, issued_at) VALUES (1, 1, 'n1', :now)",
        "INSERT INTO alerts (id, tenant_id, gateway_id, kind, detail, at) VALUES "
        "(1, 1, 1, 'cloned-identity', 'x', :now)",
        "INSERT INTO app_assignments (id, group_id, publisher, name, version, grants, "
        "created_at) VALUES (1, 1, 'hotels', 'minibar', '2.0.1', '[]', :now)",
        "INSERT INTO gateway_updates (gateway_id, version, phase, progress, detail, "
        "updated_at) VALUES (1, '1.0.0', 'committed', 100, '', :now)",
        "INSERT INTO update_events (id, gateway_id, at, version, phase, detail) VALUES "
        "(1, 1, :now, '1.0.0', 'committed', '')",
        "INSERT INTO audit_events (id, tenant_id, actor, action, target, detail, at) VALUES "
        "(1, 1, 'hotels/ops', 'app.assign', 'lobby/minibar', '{}', :now)",
    ]
    for statement in statements:
        connection.execute(text(statement), {"now": "2026-01-01 00:00:00"})


def _counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as connection:
        return {t: int(connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())  # noqa: S608
                for t in KEPT}


def test_0006_upgrades_a_populated_0005_and_downgrades(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        _to(db, "0005")
        assert migrate.current(db) == "0005"
        with db.engine.begin() as connection:
            _populate(connection)
        before = _counts(db)
        assert all(before.values())
        _to(db, "0006")  # (later revisions have tests of their own)
        assert migrate.current(db) == "0006"
        assert set(inspect(db.engine).get_table_names()) >= NEW
        assert _counts(db) == before  # nothing lost, nothing cascaded away
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO security_events (tenant_id, gateway_id, app, kind, what, detail, "
                "count, occurred_at, received_at) VALUES (1, 1, 'minibar', 'file', 'x', '{}', "
                "1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        _to(db, "0005", down=True)
        assert not NEW & set(inspect(db.engine).get_table_names())
        assert _counts(db) == before
        _to(db, "0006")
        assert migrate.current(db) == "0006"
    finally:
        db.close()
