"""Making the gateway run the apps its group is assigned, each with what it is granted.

For every assigned app not installed at the assigned version: install it through
TUF (:mod:`store`); for every installed app no longer assigned: remove it. The
interfaces an app may use are those its manifest asks for *and* the operator
granted; the rest are withheld, and said so in the outcome (and in
``grants.json`` beside the app, which the sandbox reads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeward.board.base import Board
from edgeward.device.apps import store
from edgeward.device.apps.sandbox import split_grants
from edgeward.device.updates.client import TufClient
from edgeward.errors import Error, NotFound, SecurityError, Unreachable
from edgeward.files import write_atomic

GRANTS = "grants.json"


@dataclass(frozen=True)
class AppOutcome:
    app: str
    action: str  # installed | changed | kept | removed | refused | failed
    version: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"app": self.app, "action": self.action, "version": self.version,
                "detail": self.detail}


def _record(board: Board, name: str) -> dict[str, Any]:
    """What :func:`_grant` last recorded for the app ({} when nothing readable)."""
    try:
        data = json.loads((store.apps_dir(board) / name / GRANTS).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def granted(board: Board, name: str) -> set[str]:
    """The interfaces the app may use (what its manifest asks for and was granted)."""
    given = _record(board, name).get("granted")
    return {str(p) for p in given} if isinstance(given, list) else set()  # deny by default


def mode(board: Board, name: str) -> str:
    """``complain`` when the operator put the app in complain mode on this gateway."""
    return "complain" if _record(board, name).get("mode") == "complain" else "enforce"


def withheld(board: Board, name: str) -> list[str]:
    held = _record(board, name).get("withheld")
    return [str(p) for p in held] if isinstance(held, list) else []


def _grant(board: Board, name: str, grants: list[str], run_mode: str = "enforce"
           ) -> tuple[list[str], list[str], bool]:
    """Record what the app is given; True when that changed (its daemons restart)."""
    given, held = split_grants([str(p) for p in store.current(board, name).manifest.plugs],
                               set(grants))
    record = {"granted": given, "withheld": held,
              "mode": "complain" if run_mode == "complain" else "enforce"}
    path = store.apps_dir(board) / name / GRANTS
    try:
        changed = json.loads(path.read_text()) != record
    except (OSError, ValueError):
        changed = True
    if changed:
        write_atomic(path, json.dumps(record).encode(), mode=0o600)
    return given, held, changed


def reconcile(board: Board, wanted: list[dict[str, Any]], tuf: Callable[[], TufClient],
              before_remove: Callable[[str], None] = lambda _: None) -> list[AppOutcome]:
    outcomes = []
    names = set()
    for app in wanted:
        name, version = str(app["name"]), str(app["version"])
        names.add(name)
        try:
            try:
                running = store.current(board, name).version
            except NotFound:
                running = ""
            action = "kept"
            if running != version:
                client = tuf()
                try:
                    store.install(board, client, str(app["publisher"]), name, version)
                finally:
                    client.close()
                action = "installed"
            _, held, changed = _grant(board, name, list(app.get("grants", [])),
                                      str(app.get("mode", "enforce")))
            if changed and action == "kept":
                action = "changed"  # same revision, other grants or mode: restart it
            detail = f"not granted: {', '.join(held)}" if held else ""
            outcomes.append(AppOutcome(name, action, version, detail))
        except Unreachable:
            raise
        except SecurityError as e:
            outcomes.append(AppOutcome(name, "refused", version, e.message))
        except Error as e:
            outcomes.append(AppOutcome(name, "failed", version, e.message))
    for name in store.installed(board):
        if name not in names:
            before_remove(name)  # its daemons stopped first: nothing busy under it
            store.remove(board, name)
            outcomes.append(AppOutcome(name, "removed"))
    return outcomes
