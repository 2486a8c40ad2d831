"""``edgeward device apps``: the apps installed on a gateway, and their daemons."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Any

import click

from edgeward.board.virtual import VirtualBoard
from edgeward.cli.common import device_option, json_option
from edgeward.cli.output import console, emit_json
from edgeward.device.apps import control, logsink, profile, reconcile, runner, store
from edgeward.device.apps.supervisor import saved_status
from edgeward.errors import NotFound, StateError, one_line


@click.group("apps")
def apps() -> None:
    """Installed apps: list, start, stop, status, logs, run a command in the sandbox,
    roll back, remove, and what complain mode learned."""


def _states(board: VirtualBoard) -> list[dict[str, Any]]:
    """The daemons' states from the running agent, or as it last saved them."""
    try:
        return list(control.call(board, "status"))
    except StateError:
        return [dict(u, state=f"{u['state']} (agent not running)") for u in saved_status(board)]


@apps.command("list")
@device_option
@json_option
def list_apps(device: Path, as_json: bool) -> None:
    """Apps installed: revision, what they are granted and not granted, daemon states."""
    board = VirtualBoard.open(device)
    units = _states(board)
    rows: list[dict[str, Any]] = []
    for name in store.installed(board):
        app = store.current(board, name)
        rows.append({"app": name, "version": app.version, "publisher": app.manifest.publisher,
                     "mounted": store.mounted(app.root),
                     "granted": sorted(reconcile.granted(board, name)),
                     "withheld": reconcile.withheld(board, name),
                     "mode": reconcile.mode(board, name),
                     "programs": [p.name for p in app.manifest.programs],
                     "daemons": {u["daemon"]: u["state"] for u in units if u["app"] == name}})
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        daemons = ", ".join(f"{d} {s}" for d, s in row["daemons"].items()) or "no daemons"
        console.print(f"{row['app']} {row['version']} ({row['publisher']}) "
                      f"[{row['mode']}] granted: {', '.join(row['granted']) or 'nothing'}"
                      + (f"; NOT granted: {', '.join(row['withheld'])}" if row["withheld"]
                         else "") + f"; {daemons}")
    if not rows:
        console.print("no apps installed")


def _print_units(units: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        emit_json(units)
        return
    for u in units:
        extra = f" ({u['detail']})" if u.get("detail") else ""
        console.print(f"{u['app']}/{u['daemon']}: {u['state']}{extra}, "
                      f"restarts {u['restarts']}, pid {u['pid'] or '-'}")


@apps.command()
@device_option
@click.argument("app")
@click.argument("daemon", required=False)
@json_option
def start(device: Path, app: str, daemon: str | None, as_json: bool) -> None:
    """Start an app's daemons (or one DAEMON) through the running agent."""
    _print_units(control.call(VirtualBoard.open(device), "start", app=app, daemon=daemon),
                 as_json)


@apps.command()
@device_option
@click.argument("app")
@click.argument("daemon", required=False)
@json_option
def stop(device: Path, app: str, daemon: str | None, as_json: bool) -> None:
    """Stop an app's daemons (or one DAEMON); a stopped app stays stopped across agent
    restarts until started again."""
    _print_units(control.call(VirtualBoard.open(device), "stop", app=app, daemon=daemon),
                 as_json)


@apps.command()
@device_option
@click.argument("app")
@json_option
def status(device: Path, app: str, as_json: bool) -> None:
    """The state of an app's daemons: running, backoff, crash-loop, stopped, failed."""
    board = VirtualBoard.open(device)
    store.current(board, app)  # NotFound for an app not installed
    units = [u for u in _states(board) if u["app"] == app]
    if not units and not as_json:
        console.print(f"{app} has no daemons")
        return
    _print_units(units, as_json)


@apps.command()
@device_option
@click.argument("app")
@click.argument("daemon", required=False)
@click.option("-n", "--lines", default=50, show_default=True, type=click.IntRange(0),
              help="How many of the last lines to show (0: all).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
def logs(device: Path, app: str, daemon: str | None, lines: int, follow: bool) -> None:
    """An app's daemon logs (stdout and stderr, stamped, kept by the agent)."""
    board = VirtualBoard.open(device)
    folder = store.apps_dir(board) / app / "logs"
    names = [daemon] if daemon else sorted(p.stem for p in folder.glob("*.log"))
    if not names or not all((folder / f"{n}.log").exists() for n in names):
        raise NotFound(f"no logs for {app}{'/' + daemon if daemon else ''}")
    for name in names:  # what an app wrote, shown with its control characters escaped
        for line in logsink.tail(folder / f"{name}.log", lines):
            click.echo(one_line(f"{name}: {line}" if len(names) > 1 else line))
    if follow:
        stop = threading.Event()
        try:
            for line in logsink.follow(folder / f"{names[0]}.log", stop):
                click.echo(one_line(line))
        except KeyboardInterrupt:
            stop.set()


@apps.command("profile")
@device_option
@click.argument("app")
@json_option
def profile_cmd(device: Path, app: str, as_json: bool) -> None:
    """What complain mode learned: the interfaces and egress rules the app needs, as
    manifest lines, and what no interface would allow."""
    board = VirtualBoard.open(device)
    try:
        found = control.call(board, "profile", app=app)
    except StateError:
        path = store.apps_dir(board) / app / "profile.json"
        if not path.exists():
            raise NotFound(f"no profile for {app}: run it in complain mode first") from None
        found = json.loads(path.read_text())
    if as_json:
        emit_json(found)
        return
    click.echo(profile.snippet(found))


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
    """Make the previous revision current again (the agent restarts its daemons)."""
    board = VirtualBoard.open(device)
    console.print(f"{app}: now {store.rollback(board, app)}")
    with contextlib.suppress(StateError):  # no agent running: it starts them when it does
        control.call(board, "restart", app=app)


@apps.command()
@device_option
@click.argument("app")
def remove(device: Path, app: str) -> None:
    """Stop its daemons, unmount and delete every revision of an app, and its data."""
    board = VirtualBoard.open(device)
    store.current(board, app)  # NotFound for an app not installed
    with contextlib.suppress(StateError, NotFound):  # no agent, or no daemons: none run
        control.call(board, "stop", app=app)
    store.remove(board, app)
    console.print(f"{app}: removed")
