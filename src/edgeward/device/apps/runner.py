"""Running an installed app's command or daemon in its sandbox, as its own user."""

from __future__ import annotations

import os
import subprocess

from edgeward.board.base import Board
from edgeward.device.apps import reconcile, sandbox, store, users
from edgeward.errors import NotFound


def run(board: Board, name: str, program: str, args: list[str], timeout: float = 60.0
        ) -> subprocess.CompletedProcess[bytes]:
    installed = store.current(board, name)
    found = next((p for p in installed.manifest.programs if p.name == program), None)
    if found is None:
        known = ", ".join(p.name for p in installed.manifest.programs) or "none"
        raise NotFound(f"{name} has no command or daemon {program!r} (it has: {known})")
    user = users.user_for(board, name)
    os.chown(installed.data, user.uid, user.gid)  # its one writable directory: its own
    os.chmod(installed.data, 0o700)
    return sandbox.run(installed.manifest, installed.root, installed.data, user,
                       [*found.argv, *args], timeout, reconcile.granted(board, name))
