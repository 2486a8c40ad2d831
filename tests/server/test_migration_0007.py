"""Migration 0007 (secrets at rest) upgrades a populated 0006 database on SQLite and
PostgreSQL, keeping every row (new tables only: nothing cascades), and downgrades."""

from __future__ import annotations

from sqlalchemy import inspect, text

from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from tests.server.test_migration_0006 import _counts, _populate, _to

NEW = {"key_check", "envelope_keys", "tenant_secrets", "recovery_keys", "device_credentials"}


def test_0007_upgrades_a_populated_0006_and_downgrades(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        _to(db, "0006")
        with db.engine.begin() as connection:
            _populate(connection)
            connection.execute(text(
                "INSERT INTO gateway_apps (tenant_id, gateway_id, name, version, publisher, "
                "state, mode, granted, withheld, restarts, reported_at) VALUES (1, 1, "
                "'minibar', '1', 'hotels', 'running', 'enforce', '[]', '[]', 0, :now)"),
                {"now": "2026-01-01 00:00:00"})
        before = _counts(db)
        _to(db, "0007")
        assert migrate.current(db) == "0007"
        assert set(inspect(db.engine).get_table_names()) >= NEW
        assert _counts(db) == before
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO tenant_secrets (tenant_id, app, scope, group_id, name, version, "
                "ciphertext, updated_at, updated_by) VALUES (1, 'minibar', 'lobby', 1, 'pw', "
                "1, :blob, :now, 'hotels/ops')"), {"blob": b"x", "now": "2026-01-01 00:00:00"})
            connection.execute(text(
                "INSERT INTO recovery_keys (gateway_id, ciphertext, escrowed_at) VALUES "
                "(1, :blob, :now)"), {"blob": b"x", "now": "2026-01-01 00:00:00"})
        _to(db, "0006", down=True)
        assert not NEW & set(inspect(db.engine).get_table_names())
        assert _counts(db) == before
        assert migrate.upgrade(db) == migrate.head()
    finally:
        db.close()
