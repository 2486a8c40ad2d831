"""Schema migrations, applied when the server starts.

The server upgrades an older schema to its own; a database whose schema is
newer than this server knows (a newer edgeward wrote it) is refused rather
than touched.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from edgeward.errors import StateError, ToolError
from edgeward.server.db.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database) -> str:
    """Bring the schema to this server's head; return the revision."""
    config = _config()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    try:
        with db.engine.begin() as connection:
            found = MigrationContext.configure(connection).get_current_revision()
            if found is not None and found not in known:
                raise StateError(
                    f"the database schema is at revision {found}, which this server does not "
                    "know (written by a newer edgeward?): refusing to start")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as e:
        raise ToolError(f"database migration failed: {e.__class__.__name__}: "
                        f"{str(e).splitlines()[0]}") from e
    return head()
