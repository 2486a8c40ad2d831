"""Power on and run the chain; leave the outcome in RAM for attestation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edgeward.board.base import Board
from edgeward.device.boot.report import BootReport, StageResult
from edgeward.device.boot.stages import STAGES, Context
from edgeward.errors import BootRefused, Error, InputError
from edgeward.trust.canonical import canonical

BOOT_STATE = "boot.json"


def boot(board: Board, progress: Callable[[int, int], None] | None = None) -> BootReport:
    """One power cycle: every stage in order, stopping at the first refusal."""
    board.power_on()
    report = BootReport()
    try:
        ctx = Context(board, report, board.fuses(), progress)
    except Error as e:
        report.refused_stage, report.reason = "rom", f"fuse bank unreadable: {e.message}"
        report.stages.append(StageResult("rom", False, report.reason))
        _save(board, report)
        return report
    report.security_version = ctx.fuses.security_version
    for name, stage, what in STAGES:
        try:
            stage(ctx)
        except BootRefused as refused:
            report.refused_stage, report.reason = refused.stage, refused.reason
            report.stages.append(StageResult(name, False, refused.reason))
            board.lock_huk()  # a halted boot leaves no way to the HUK either
            break
        report.stages.append(StageResult(name, True, what))
    _save(board, report)
    return report


def _save(board: Board, report: BootReport) -> None:
    board.ram_write(BOOT_STATE, canonical(report.to_dict()))


def last_boot(board: Board) -> dict[str, Any] | None:
    """What the last boot in this power cycle left in RAM, or None."""
    raw = board.ram_read(BOOT_STATE)
    if raw is None:
        return None
    try:
        state: dict[str, Any] = json.loads(raw)
    except ValueError as e:
        raise InputError("boot state in RAM is corrupt") from e
    return state
