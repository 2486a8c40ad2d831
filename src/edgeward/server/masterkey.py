"""The fleet server's master key: where it comes from, and that it is the database's.

In order: ``--master-key FILE`` (mode 0600 or stricter, else refused), the environment
variable ``EDGEWARD_MASTER_KEY`` (64 hex digits), ``DATA/master.key``. A file holds the
32 bytes raw or as 64 hex digits. With none of them and a database that never had a
master key, a new one is made into ``DATA/master.key`` (0600); with none of them and a
database that had one, the start is refused rather than a new key made. The key never
enters the database: only a check value derived from it, which a wrong key fails at
start (:func:`edgeward.server.services.keystore.check_master`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from edgeward.errors import KeyFileError
from edgeward.files import read_file, write_secret
from edgeward.server.db.engine import Database
from edgeward.server.services import keystore
from edgeward.trust import vault

ENV = "EDGEWARD_MASTER_KEY"
FILE = "master.key"


def parse(data: bytes, where: str) -> bytes:
    """32 raw bytes, or 64 hex digits (surrounding white space ignored)."""
    if len(data) == vault.KEY_SIZE:
        return data
    text = data.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != vault.KEY_SIZE:
        raise KeyFileError(f"{where}: a master key is {vault.KEY_SIZE} bytes, raw or as "
                           f"{2 * vault.KEY_SIZE} hex digits")
    return key


def load(path: Path) -> bytes:
    """A master key file, refused if others may read it (as private keys are)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0
    if mode & 0o077:
        raise KeyFileError(f"master key file {path} is readable by others (mode {mode:o}); "
                           "chmod 600 it")
    return parse(read_file(path, "master key file", 1024), f"master key file {path}")


def obtain(given: Path | None, data: Path, known: bool,
           environ: Mapping[str, str] = os.environ) -> bytes:
    """The master key to start with (see the module's docstring for the order)."""
    if given is not None:
        return load(given)
    if environ.get(ENV):
        return parse(environ[ENV].encode(), ENV)
    path = data / FILE
    if path.exists():
        return load(path)
    if known:
        raise KeyFileError(f"this database's secrets are encrypted under a master key that "
                           f"was not given ({path} is missing): pass --master-key FILE or "
                           f"set {ENV}")
    key = vault.new_key()
    write_secret(path, key.hex().encode() + b"\n")
    logging.getLogger("edgeward.server").warning(
        "first start: master key written; move it off the data disk and pass --master-key",
        extra={"fields": {"path": str(path)}})
    return key


def unlock(db: Database, given: Path | None, data: Path, now: dt.datetime) -> bytes:
    """The master key, checked against the database (a first key is recorded)."""
    with db.transaction() as session:
        known = keystore.has_check(session)
    key = obtain(given, data, known)
    with db.transaction() as session:
        keystore.check_master(session, key, now)
    return key
