"""The server's database: SQLAlchemy 2 models, engines for SQLite and PostgreSQL,
and Alembic migrations applied at start."""
