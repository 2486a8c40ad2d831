"""Where an app's secrets and credentials lie, and who may read them.

::

    /data/apps/<app>/secrets/<name>       delivered by the fleet server   (in the sandbox:
    /data/apps/<app>/credentials/<name>   made on this gateway              /run/secrets,
                                                                            /run/credentials)

Both folders are in the app's folder, so encrypted under the app's own key,
and owned by the app's user alone (folder 0500, files 0400): no other app's user
passes them, and a file appears whole (written aside, then renamed). Which
version of each secret is on the gateway is kept in the agent's own folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from edgeward.board.base import Board
from edgeward.device.apps import store
from edgeward.device.apps.sandbox import AppUser
from edgeward.errors import InputError, StateError
from edgeward.files import write_atomic

SECRETS, CREDENTIALS = "secrets", "credentials"
VIEWS = {SECRETS: "/run/secrets", CREDENTIALS: "/run/credentials"}
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_VALUE = 64 << 10


def check_name(name: str) -> str:
    if not NAME.match(name) or ".." in name:
        raise InputError(f"{name!r} is not a secret name (a-z, 0-9, '.', '_', '-')")
    return name


def folder(board: Board, app: str, kind: str) -> Path:
    return store.apps_dir(board) / app / kind


def _index(board: Board, name: str) -> Path:
    return board.data_dir / "edgeward" / name


def _load(path: Path) -> Any:
    """One of the agent's JSON indexes (None before it is first written)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise StateError(f"{path} is corrupt") from e


def versions(board: Board) -> dict[str, dict[str, int]]:
    """What is on the gateway: app -> secret name -> version."""
    data = _load(_index(board, "secrets.json")) or {}
    return {str(a): {str(n): int(v) for n, v in names.items()} for a, names in data.items()}


def save_versions(board: Board, table: dict[str, dict[str, int]]) -> None:
    write_atomic(_index(board, "secrets.json"), json.dumps(
        {a: n for a, n in table.items() if n}, sort_keys=True).encode(), mode=0o600)


def reported(board: Board) -> set[str]:
    """The credentials (``app/name``) the fleet server has taken."""
    return set(_load(_index(board, "credentials.json")) or ())


def save_reported(board: Board, done: set[str]) -> None:
    write_atomic(_index(board, "credentials.json"), json.dumps(sorted(done)).encode(),
                 mode=0o600)


def _own_folder(path: Path, user: AppUser) -> Path:
    path.mkdir(mode=0o500, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise StateError(f"{path} is not a folder")
    os.chown(path, user.uid, user.gid, follow_symlinks=False)
    os.chmod(path, 0o500)
    return path


def put(board: Board, app: str, user: AppUser, kind: str, name: str, value: bytes) -> None:
    """Write one secret for ``app`` (readable by its user only), replacing it whole."""
    if len(value) > MAX_VALUE:
        raise InputError(f"secret {name} is over {MAX_VALUE} bytes")
    where = _own_folder(folder(board, app, kind), user) / check_name(name)
    tmp = where.with_name(f".{name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    try:
        os.fchown(fd, user.uid, user.gid)
        with os.fdopen(fd, "wb") as out:
            out.write(value)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, where)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove(board: Board, app: str, kind: str, name: str) -> None:
    (folder(board, app, kind) / check_name(name)).unlink(missing_ok=True)


def read(board: Board, app: str, kind: str, name: str) -> bytes | None:
    path = folder(board, app, kind) / check_name(name)
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


def views(board: Board, app: str) -> dict[Path, str]:
    """The app's secret folders that exist, and where its sandbox shows them."""
    return {folder(board, app, kind): view for kind, view in VIEWS.items()
            if folder(board, app, kind).is_dir()}
