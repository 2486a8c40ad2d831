"""Migrations: applied at start on SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from edgeward.errors import StateError
from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import Base
from edgeward.server.db.monitoring import FULLTEXT_INDEX, FULLTEXT_TABLES


def test_upgrade_creates_the_schema_and_is_idempotent(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        assert migrate.current(db) is None
        assert migrate.upgrade(db) == migrate.head()
        assert migrate.upgrade(db) == migrate.head()  # a restart changes nothing
        tables = set(inspect(db.engine).get_table_names())
        assert {"tenants", "users", "api_tokens", "gateways", "audit_events"} <= tables
    finally:
        db.close()


def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        migrate.upgrade(db)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "include_name": lambda name, kind, _parent: not (
                    (kind == "table" and str(name).startswith(FULLTEXT_TABLES))
                    or (kind == "index" and name == FULLTEXT_INDEX))})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        db.close()


def test_a_schema_newer_than_the_server_is_refused(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        migrate.upgrade(db)
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StateError, match="does not know"):
            migrate.upgrade(db)
        assert migrate.current(db) == "9999"  # left untouched
    finally:
        db.close()
