"""One identity, two devices: their boot ids alternate.

A genuine gateway's boot id changes only forward, once per power cycle; two devices
holding one certificate report with two boot ids in turn, so a boot id that comes back
right after another replaced it is a clone. The same rule as the registry's check-ins
(:func:`edgeward.server.services.registry.heartbeat`), pure, for whatever carries a boot
id (a heartbeat, a telemetry report).
"""

from __future__ import annotations

from dataclasses import dataclass


def step(current: str, previous: str, boot_id: str) -> tuple[str, str, bool]:
    """``(current, previous, cloned)`` after a report from ``boot_id``."""
    if boot_id == current:
        return current, previous, False
    cloned = bool(previous) and boot_id == previous
    return boot_id, current, cloned


@dataclass
class BootTrail:
    current: str = ""
    previous: str = ""

    def observe(self, boot_id: str) -> bool:
        """Feed the boot id of a report; True when an older boot came back."""
        self.current, self.previous, cloned = step(self.current, self.previous, boot_id)
        return cloned
