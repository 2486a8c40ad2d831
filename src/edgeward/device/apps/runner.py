"""An installed app's command or daemon, planned for its sandbox as its own user."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
from pathlib import Path

from edgeward.board.base import Board
from edgeward.device.apps import launch, reconcile, remedy, sandbox, store, users
from edgeward.device.secrets import vault
from edgeward.errors import NotFound


def peripherals(board: Board) -> sandbox.Peripherals:
    return sandbox.Peripherals(board.serial_ports(), board.gpio_dir())


def plan(board: Board, name: str, program: str, args: list[str], complain: bool = False,
         bus_socket: Path | None = None) -> tuple[sandbox.Plan, sandbox.AppUser]:
    """The plan for one of the app's programs, and the user it runs as."""
    installed = store.current(board, name)
    found = next((p for p in installed.manifest.programs if p.name == program), None)
    if found is None:
        known = ", ".join(p.name for p in installed.manifest.programs) or "none"
        raise NotFound(f"{name} has no command or daemon {program!r} (it has: {known})")
    user = users.user_for(board, name)
    os.chown(installed.data, user.uid, user.gid)  # its one writable directory: its own
    os.chmod(installed.data, 0o700)
    chosen = sandbox.plan(installed.manifest, installed.root, installed.data,
                          [*found.argv, *args], reconcile.granted(board, name),
                          peripherals(board), complain, bus_socket,
                          vault.views(board, name))
    if remedy.isolated(board, name):
        chosen = dataclasses.replace(chosen, isolated=True)
    claim_gpio(board, chosen, user)
    return chosen, user


def claim_gpio(board: Board, chosen: sandbox.Plan, user: sandbox.AppUser) -> None:
    """Hand the app the GPIO lines it was granted (as udev would): their files become
    its user's; every other line stays as it was."""
    folder = board.gpio_dir()
    if folder is None:
        return
    for plug in chosen.granted:
        interface, _, line = plug.partition(":")
        path = folder / f"gpio{line}"
        if interface != "gpio" or path.is_symlink() or not path.is_dir():
            continue
        for item in (path, *path.iterdir()):
            # the app owns these once granted: never follow a link it may have put there
            if item.is_symlink() or not (item.is_dir() or item.is_file()):
                continue
            with contextlib.suppress(OSError):
                os.chown(item, user.uid, user.gid, follow_symlinks=False)


def run(board: Board, name: str, program: str, args: list[str], timeout: float = 60.0
        ) -> subprocess.CompletedProcess[bytes]:
    chosen, user = plan(board, name, program, args)
    return launch.run(chosen, user, timeout)
