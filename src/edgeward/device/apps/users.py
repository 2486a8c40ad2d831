"""Each app's own unprivileged user: a uid/gid from 20000 up, the same across restarts.

The uid is also registered in the system's user database (``ew<uid>``, no home, no
shell, no password) the first time it is used: services such as the system D-Bus
refuse a peer whose uid nobody knows. The account is named for the uid, not the app,
so that an app removed and another installed later never inherit a name's history.
"""

from __future__ import annotations

import fcntl
import json
import logging
import pwd
import shutil
import subprocess

from edgeward.board.base import Board
from edgeward.device.apps import store
from edgeward.device.apps.sandbox import AppUser
from edgeward.errors import StateError
from edgeward.files import write_atomic

log = logging.getLogger("edgeward.agent")

FIRST_ID = 20000
LAST_ID = 29999
USERS = "users.json"


def user_for(board: Board, name: str) -> AppUser:
    """The app's user; a new app gets the first id neither another app nor any other
    account on the system has (the agent and the CLI may ask at once: a lock)."""
    folder = store.state_dir(board)
    path = folder / USERS
    with (folder / ".users.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            table: dict[str, int] = json.loads(path.read_text())
        except FileNotFoundError:
            table = {}
        except ValueError as e:
            raise StateError(f"{path} is corrupt") from e
        if name not in table:
            taken = set(table.values())
            free = next((i for i in range(FIRST_ID, LAST_ID + 1)
                         if i not in taken and not _foreign(i)), None)
            if free is None:
                raise StateError("no app user ids left")
            table[name] = free
            write_atomic(path, json.dumps(table, sort_keys=True).encode(), mode=0o600)
    register(table[name])
    return AppUser(table[name], table[name])


def _foreign(uid: int) -> bool:
    """Whether ``uid`` belongs to an account that is not an app user's."""
    try:
        return pwd.getpwuid(uid).pw_name != f"ew{uid}"
    except KeyError:
        return False


def register(uid: int) -> None:
    """A system account for ``uid`` (and a group of the same id), if it has none."""
    try:
        pwd.getpwuid(uid)
        return
    except KeyError:
        pass
    name = f"ew{uid}"
    groupadd, useradd = shutil.which("groupadd"), shutil.which("useradd")
    if groupadd is None or useradd is None:
        log.warning("no useradd here: app user %d stays unnamed (D-Bus will refuse it)", uid)
        return
    for command in ([groupadd, "--system", "--gid", str(uid), name],
                    [useradd, "--system", "--uid", str(uid), "--gid", str(uid),
                     "--no-create-home", "--home-dir", "/nonexistent",
                     "--shell", "/usr/sbin/nologin", "--comment", "edgeward app", name]):
        done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        if done.returncode not in (0, 9):  # 9: the name exists already
            log.warning("could not register app user %d: %s", uid,
                        done.stderr.decode(errors="replace").strip())
            return
