"""The update in progress, kept on the data area so a power cut resumes it.

Phases: ``idle`` -> ``downloading`` (then the inactive slot is written and
verified) -> ``staged`` (try-boot set, rebooting) -> back to ``idle`` after a
commit or a rollback. Versions that failed here are remembered, so a release
that rolled back is not tried again and again; reports the server could not
take wait here for the next contact.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeward.board.base import Board
from edgeward.files import private_dir, traversable_dir, write_atomic

PHASES = ("idle", "downloading", "staged")
MAX_PENDING = 32


@dataclass
class UpdateState:
    phase: str = "idle"
    version: str = ""
    slot: str = ""
    security_version: int = 0
    rollout_id: int | None = None
    from_version: str = ""
    restaged: bool = False
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)

    def queue(self, report: dict[str, Any]) -> None:
        self.pending = [*self.pending, report][-MAX_PENDING:]

    def reset(self) -> None:
        self.phase, self.version, self.slot = "idle", "", ""
        self.security_version, self.rollout_id, self.from_version = 0, None, ""
        self.restaged = False


def work_dir(board: Board) -> Path:
    return private_dir(board.data_dir / "edgeward" / "updates")


def _path(board: Board) -> Path:
    return traversable_dir(board.data_dir / "edgeward") / "update.json"


def load(board: Board) -> UpdateState:
    try:
        raw = json.loads(_path(board).read_text())
        state = UpdateState(**{k: raw[k] for k in asdict(UpdateState()) if k in raw})
    except FileNotFoundError:
        return UpdateState()
    except (ValueError, TypeError):
        return UpdateState()  # unreadable: start clean (the slots themselves are verified)
    if state.phase not in PHASES:
        state.reset()
    return state


def save(board: Board, state: UpdateState) -> None:
    write_atomic(_path(board), json.dumps(asdict(state), sort_keys=True).encode(), mode=0o600)
