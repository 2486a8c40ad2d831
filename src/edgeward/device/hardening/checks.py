"""The hardening audit over its inputs (pure): everything :mod:`.collect` read, checked.

``audit(inputs)`` runs every check and returns the findings most severe first. An
input that is None was not there to read (no ``/etc/inittab`` on a systemd image, no
``sshd_config`` where ssh is not installed): nothing is checked for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeward.board.fuses import FuseState
from edgeward.device.hardening import accounts, console, permissions, services, sshd
from edgeward.device.hardening.finding import Finding, ordered
from edgeward.device.hardening.permissions import FileRecord
from edgeward.device.hardening.services import Allowed, Listener
from edgeward.device.hardening.sshd_config import MAIN, parse

__all__ = ["Allowed", "FileRecord", "Finding", "Inputs", "Listener", "audit", "fuses"]


@dataclass(frozen=True)
class Inputs:
    """What the audit looks at, already read."""

    cmdline: str = ""
    inittab: str | None = None
    enabled_units: tuple[str, ...] = ()  # paths of the links in systemd's *.wants/ folders
    masked_units: tuple[str, ...] = ()  # unit names linked to /dev/null
    shadow: str | None = None
    passwd: str | None = None
    sshd_config: str | None = None
    sshd_includes: dict[str, str] = field(default_factory=dict)  # path -> text
    listeners: tuple[Listener, ...] = ()
    allowed: tuple[Allowed, ...] = ()
    files: tuple[FileRecord, ...] = ()
    files_truncated: bool = False
    fuses: FuseState | None = None


def fuses(state: FuseState) -> list[Finding]:
    """The debug-disable fuse: unburnt, JTAG/SWD reach the running CPU and its keys."""
    if state.debug_disable:
        return []
    return [Finding(
        "fuse.debug", "high", "the debug port is open (debug-disable fuse not burnt)",
        "fuses: debug_disable = 0", "Burn debug_disable (it is one-time programmable): "
        "through the open port a debugger reads the HUK-derived keys and RAM. A "
        "production gateway leaves the factory with it burnt; this one never was, or "
        "its fuses were altered.")]


def audit(inputs: Inputs) -> list[Finding]:
    found = console.cmdline(inputs.cmdline)
    if inputs.inittab is not None:
        found += console.inittab(inputs.inittab)
    found += console.systemd_units(inputs.enabled_units, inputs.masked_units)
    if inputs.shadow is not None:
        found += accounts.shadow(inputs.shadow)
    if inputs.passwd is not None:
        found += accounts.passwd(inputs.passwd)
    if inputs.sshd_config is not None:
        found += sshd.check(parse(inputs.sshd_config, inputs.sshd_includes, MAIN))
    found += services.check(inputs.listeners, inputs.allowed)
    found += permissions.check(inputs.files, inputs.files_truncated)
    if inputs.fuses is not None:
        found += fuses(inputs.fuses)
    return ordered(found)
