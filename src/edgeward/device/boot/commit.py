"""Committing the slot booted on trial, as a passing health check does.

Committing a release also burns the fused counters up to that release's: the
OS counter to the kernel bundle's security version, the firmware counter to
BL2's; from then on nothing older can boot, on either slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeward.board.base import Board
from edgeward.device.boot.chain import last_boot
from edgeward.device.boot.slots import commit as commit_env
from edgeward.device.storage import sealed
from edgeward.errors import StateError


@dataclass(frozen=True)
class Committed:
    slot: str
    security_version: int
    burnt: bool


def commit_booted_slot(board: Board) -> Committed:
    last = last_boot(board)
    env = board.read_env()
    if last is None or last["verdict"] != "booted" or env is None:
        raise StateError("only a slot that booted in this power cycle can be committed")
    board.write_env(commit_env(env, str(last["slot"])))
    return burn_counters(board)


def burn_counters(board: Board) -> Committed:
    """Burn the counters up to the committed release that booted: right after its
    commit, and again at the next start if the power failed between the two."""
    last = last_boot(board)
    env = board.read_env()
    if (last is None or last["verdict"] != "booted" or env is None or env.try_boot
            or env.active != last["slot"]):
        raise StateError("only the committed slot that booted burns the counters")
    slot = str(last["slot"])
    by_stage = {str(e["stage"]): int(e["security_version"]) for e in last["events"]}
    fuses = board.fuses()
    release_svn = by_stage["bl2"]  # the kernel bundle BL2 verified and measured
    burnt = release_svn > fuses.os_security_version
    if burnt:
        board.advance_security_version(release_svn, "os_security_version")
        sealed.advance_counter(board, release_svn)  # the TPM's counter follows the fuses
    if by_stage["rom"] > fuses.security_version:  # BL2's own (updated with the factory)
        board.advance_security_version(by_stage["rom"])
        burnt = True
    return Committed(slot, release_svn, burnt)
