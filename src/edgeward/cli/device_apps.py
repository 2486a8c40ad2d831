"""``edgeward device apps``: the apps installed on a gateway."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from edgeward.board.virtual import VirtualBoard
from edgeward.cli.common import device_option, json_option
from edgeward.cli.output import console, emit_json
from edgeward.device.apps import reconcile, runner, store


@click.group("apps")
def apps() -> None:
    """Installed apps: list, run a command in its sandbox, roll back, remove."""


@apps.command("list")
@device_option
@json_option
def list_apps(device: Path, as_json: bool) -> None:
    """Apps installed, their current revision and what they are granted."""
    board = VirtualBoard.open(device)
    rows: list[dict[str, Any]] = []
    for name in store.installed(board):
        app = store.current(board, name)
        rows.append({"app": name, "version": app.version, "publisher": app.manifest.publisher,
                     "mounted": store.mounted(app.root),
                     "granted": sorted(reconcile.granted(board, name)),
                     "programs": [p.name for p in app.manifest.programs]})
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        console.print(f"{row['app']} {row['version']} ({row['publisher']}) granted: "
                      f"{', '.join(row['granted']) or 'nothing'}; programs: "
                      f"{', '.join(row['programs']) or 'none'}")
    if not rows:
        console.print("no apps installed")


@apps.command("run")
@device_option
@click.argument("app")
@click.argument("program")
@click.argument("args", nargs=-1)
def run_app(device: Path, app: str, program: str, args: tuple[str, ...]) -> None:
    """Run an app's PROGRAM (a command or daemon of its manifest) in its sandbox; its
    output is printed and its exit code returned."""
    done = runner.run(VirtualBoard.open(device), app, program, list(args))
    sys.stdout.buffer.write(done.stdout)
    sys.stderr.buffer.write(done.stderr)
    sys.exit(done.returncode)


@apps.command()
@device_option
@click.argument("app")
def rollback(device: Path, app: str) -> None:
    """Make the previous revision current again."""
    console.print(f"{app}: now {store.rollback(VirtualBoard.open(device), app)}")


@apps.command()
@device_option
@click.argument("app")
def remove(device: Path, app: str) -> None:
    """Unmount and delete every revision of an app, and its data."""
    store.remove(VirtualBoard.open(device), app)
    console.print(f"{app}: removed")
