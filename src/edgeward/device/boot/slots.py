"""A/B slot choice and commit (pure over :class:`BootEnv`).

A new slot is staged with ``try_boot`` set; every boot of it counts; if it is
not committed within ``boot_limit`` boots (a failed verification, a failed
health check, a crash), BL2 falls back to the other slot on its own.
"""

from __future__ import annotations

from dataclasses import replace

from edgeward.board.bootenv import BootEnv, other
from edgeward.errors import StateError


def choose_slot(env: BootEnv) -> tuple[BootEnv, str]:
    """The environment to boot with, and a note if it fell back."""
    if not env.try_boot:
        return env, ""
    if env.boot_count >= env.boot_limit:
        note = (f"slot {env.active} was not committed after {env.boot_count} boot(s); "
                f"fell back to slot {other(env.active)}")
        return replace(env, active=other(env.active), try_boot=False, boot_count=0,
                       last_fallback=note), note
    return replace(env, boot_count=env.boot_count + 1), ""


def stage_try(env: BootEnv, slot: str, boot_limit: int | None = None) -> BootEnv:
    """Make ``slot`` (freshly written) the one to try at the next boot."""
    committed = other(env.active) if env.try_boot else env.active
    if slot == committed:
        raise StateError(f"slot {slot} holds the committed release; write the other slot")
    return replace(env, active=slot, try_boot=True, boot_count=0,
                   boot_limit=boot_limit or env.boot_limit, last_fallback="")


def commit(env: BootEnv, booted_slot: str) -> BootEnv:
    """Mark the slot we booted as good (after a health check)."""
    if env.active != booted_slot:
        raise StateError(f"booted slot {booted_slot} is not the active slot {env.active}")
    if not env.try_boot:
        raise StateError(f"slot {booted_slot} is already committed")
    return replace(env, try_boot=False, boot_count=0)
