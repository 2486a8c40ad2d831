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


def granted(board: Board, name: str) -> set[str]:
    """The interfaces the app may use (what its manifest asks for and was granted)."""
    try:
        data = json.loads((store.apps_dir(board) / name / GRANTS).read_text())
        return set(data["granted"])
    except (OSError, ValueError, KeyError):
        return set()  # deny by default


def mode(board: Board, name: str) -> str:
    """``complain`` when the operator put the app in complain mode on this gateway."""
    try:
        data = json.loads((store.apps_dir(board) / name / GRANTS).read_text())
        return "complain" if data.get("mode") == "complain" else "enforce"
    except (OSError, ValueError, AttributeError):
        return "enforce"


def withheld(board: Board, name: str) -> list[str]:
    try:
        return [str(p) for p in json.loads(
            (store.apps_dir(board) / name / GRANTS).read_text())["withheld"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _grant(board: Board, name: str, grants: list[str], run_mode: str = "enforce"
           ) -> tuple[list[str], list[str], bool]:
    """Record what the app is given; True when that changed (its daemons restart)."""
    manifest = store.current(board, name).manifest
    asked = [str(p) for p in manifest.plugs]
    allowed = set(grants)
    given = [p for p in asked if p in allowed or p.partition(":")[0] in allowed]
    held = [p for p in asked if p not in given]
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
