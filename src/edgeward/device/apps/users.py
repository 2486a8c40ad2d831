"""Each app's own unprivileged user: a uid/gid from 20000 up, the same across restarts."""

from __future__ import annotations

import json

from edgeward.board.base import Board
from edgeward.device.apps import store
from edgeward.device.apps.sandbox import AppUser
from edgeward.errors import StateError
from edgeward.files import write_atomic

FIRST_ID = 20000
LAST_ID = 29999
USERS = "users.json"


def user_for(board: Board, name: str) -> AppUser:
    path = store.apps_dir(board) / USERS
    try:
        table: dict[str, int] = json.loads(path.read_text())
    except FileNotFoundError:
        table = {}
    except ValueError as e:
        raise StateError(f"{path} is corrupt") from e
    if name not in table:
        taken = set(table.values())
        free = next((i for i in range(FIRST_ID, LAST_ID + 1) if i not in taken), None)
        if free is None:
            raise StateError("no app user ids left")
        table[name] = free
        write_atomic(path, json.dumps(table, sort_keys=True).encode(), mode=0o600)
    return AppUser(table[name], table[name])
