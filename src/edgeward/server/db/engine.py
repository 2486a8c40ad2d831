"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from edgeward.errors import InputError

SCHEMES = ("sqlite", "postgresql")


def make_engine(url: str) -> Engine:
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in SCHEMES:
        raise InputError(f"database URL must be sqlite:///PATH or postgresql://...; got {scheme}")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        if scheme == "sqlite":
            # the driver's own transaction handling off: each transaction begins IMMEDIATE
            # (it takes the write lock at once, waiting its turn under busy_timeout); a
            # deferred one that read first and then writes fails at once, without
            # waiting, when another writer committed in between (WAL's snapshot rule)
            engine = create_engine(url, connect_args={"check_same_thread": False,
                                                      "isolation_level": None})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ArgumentError as e:
        raise InputError(f"database URL is not valid: {e}") from e
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine and its sessions; one transaction per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._turn: contextlib.AbstractContextManager[object] = (
            threading.RLock() if self.engine.dialect.name == "sqlite"
            else contextlib.nullcontext())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed together, or not at all. On SQLite the
        server's transactions take turns in the process (one writer at a time is all
        SQLite allows; a lock queues them instead of SQLite's busy-wait, whose polling
        left a few requests waiting seconds behind the others)."""
        with self._turn, self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
