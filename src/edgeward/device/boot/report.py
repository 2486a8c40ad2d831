"""What a boot did: its stages, slot, measurements and verdict."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from edgeward.trust.measurement import INITIAL, Event, extend


@dataclass
class StageResult:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class BootReport:
    slot: str = ""
    stages: list[StageResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    register: bytes = INITIAL
    refused_stage: str = ""
    reason: str = ""
    fallback: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    security_version: int = 0
    boot_id: str = field(default_factory=lambda: secrets.token_hex(16))  # one per power cycle

    @property
    def verdict(self) -> str:
        return "refused" if self.refused_stage else "booted"

    def measure(self, event: Event) -> None:
        self.events.append(event)
        self.register = extend(self.register, event)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "slot": self.slot,
            "refused_stage": self.refused_stage or None, "reason": self.reason or None,
            "fallback": self.fallback or None,
            "stages": [s.to_dict() for s in self.stages],
            "register": self.register.hex(),
            "events": [e.to_dict() for e in self.events],
            "versions": self.versions,
            "fused_security_version": self.security_version,
            "boot_id": self.boot_id,
        }
