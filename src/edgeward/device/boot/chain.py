"""Power on and run the chain; leave the outcome in RAM for attestation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeward.board.base import Board
from edgeward.device.boot.report import BootReport, StageResult
from edgeward.device.boot.stages import STAGES, Context
from edgeward.errors import BootRefused, Error, InputError
from edgeward.trust.canonical import Fields, canonical, load_object

BOOT_STATE = "boot.json"


def boot(board: Board, progress: Callable[[int, int], None] | None = None) -> BootReport:
    """One power cycle: every stage in order, stopping at the first refusal.

    Whatever happens (a refusal, unreadable flash), the HUK is locked when
    this returns: a halted boot leaves no way to it either.
    """
    board.power_on()
    report = BootReport()
    try:
        try:
            fuses = board.fuses()
        except (Error, OSError) as e:
            reason = e.message if isinstance(e, Error) else (e.strerror or str(e))
            raise BootRefused("rom", f"fuse bank unreadable: {reason}") from e
        ctx = Context(board, report, fuses, progress)
        report.security_version = fuses.security_version
        for name, stage, what in STAGES:
            try:
                stage(ctx)
            except BootRefused:
                raise
            except OSError as e:  # flash that cannot be read is refused like flash that lies
                raise BootRefused(name, f"flash unreadable: {e.strerror or e}") from e
            except Error as e:
                raise BootRefused(name, e.message) from e
            report.stages.append(StageResult(name, True, what))
    except BootRefused as refused:
        report.refused_stage, report.reason = refused.stage, refused.reason
        report.stages.append(StageResult(refused.stage, False, refused.reason))
    finally:
        board.lock_huk()
    board.ram_write(BOOT_STATE, canonical(report.to_dict()))
    return report


def last_boot(board: Board) -> dict[str, Any] | None:
    """What the last boot in this power cycle left in RAM, or None."""
    raw = board.ram_read(BOOT_STATE)
    if raw is None:
        return None
    f = Fields(load_object(raw, "boot state in RAM", InputError), "boot state in RAM",
               InputError)
    f.str_("verdict")
    f.str_("slot")
    f.list_("events")
    return f.obj
