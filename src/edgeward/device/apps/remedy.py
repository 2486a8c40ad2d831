"""Remediation an operator ordered, as the gateway keeps it: an app cut from the network,
the whole gateway in quarantine.

Both are markers under the agent's data (they survive a reboot, as the order stands
until it is lifted): an app cut from the network starts with an egress allow-list that
allows nothing and may bind no port (the cgroup BPF filters, :mod:`egress`); in
quarantine every app is so cut, and the agent keeps only its own channels to the fleet
server (updates, monitoring, orders). Stopping an app is the supervisor's operator stop.

On the virtual gateway the host's own network is not the gateway's to close: what
quarantine withdraws is the apps' network, which is what a compromised app would use.
"""

from __future__ import annotations

from pathlib import Path

from edgeward.board.base import Board
from edgeward.device.apps import store
from edgeward.files import write_atomic

CUT = "network-cut"
QUARANTINE = "quarantine"


def _app_marker(board: Board, app: str) -> Path:
    return store.apps_dir(board) / app / CUT


def _gateway_marker(board: Board) -> Path:
    return board.data_dir / "edgeward" / QUARANTINE


def quarantined(board: Board) -> bool:
    return _gateway_marker(board).exists()


def isolated(board: Board, app: str) -> bool:
    """Whether the app must start without network."""
    return quarantined(board) or _app_marker(board, app).exists()


def cut(board: Board, app: str) -> None:
    store.current(board, app)  # an installed app, or NotFound
    write_atomic(_app_marker(board, app), b"", mode=0o600)


def restore(board: Board, app: str) -> None:
    store.current(board, app)
    _app_marker(board, app).unlink(missing_ok=True)


def quarantine(board: Board) -> None:
    write_atomic(_gateway_marker(board), b"", mode=0o600)


def release(board: Board) -> None:
    _gateway_marker(board).unlink(missing_ok=True)
