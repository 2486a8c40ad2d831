"""Rollout stages and who is in them: pure functions, no I/O.

A stage is either a share of the model's fleet, ``{"percent": 10}``, or named
groups, ``{"groups": ["acme/lobby"]}``. Percentages are cumulative: a gateway
whose bucket (a hash of rollout id and serial, uniform in [0, 100)) is below
a stage's percent is in that stage, unless an earlier stage took it already.
The same gateway lands in the same bucket for a rollout every time, and each
rollout shuffles the fleet anew, so the first 10% is not always the same
gateways.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeward.errors import InputError

MAX_STAGES = 20
MAX_GROUPS = 50
GROUP_REF = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Stage:
    percent: int | None = None
    groups: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"percent": self.percent} if self.percent is not None else {
            "groups": list(self.groups)}

    def label(self) -> str:
        return f"{self.percent}%" if self.percent is not None else ", ".join(self.groups)


def parse(raw: Sequence[Any]) -> tuple[Stage, ...]:
    """Checked stages: 1..20 of them, percents 1..100 and rising, groups "tenant/group"."""
    if not isinstance(raw, list | tuple) or not 1 <= len(raw) <= MAX_STAGES:
        raise InputError(f"a rollout needs 1 to {MAX_STAGES} stages")
    stages: list[Stage] = []
    last = 0
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict) or len(item) != 1:
            raise InputError(f"stage {number}: give exactly one of 'percent' or 'groups'")
        if "percent" in item:
            percent = item["percent"]
            if not isinstance(percent, int) or isinstance(percent, bool) or not (
                    1 <= percent <= 100):
                raise InputError(f"stage {number}: percent must be an integer 1..100")
            if percent <= last:
                raise InputError(f"stage {number}: percentages are cumulative and must rise "
                                 f"(after {last}%, {percent}% adds nobody)")
            last = percent
            stages.append(Stage(percent=percent))
        elif "groups" in item:
            groups = item["groups"]
            if not isinstance(groups, list) or not 1 <= len(groups) <= MAX_GROUPS or not all(
                    isinstance(g, str) and GROUP_REF.match(g) for g in groups):
                raise InputError(f"stage {number}: groups must be 1..{MAX_GROUPS} names "
                                 "'tenant/group'")
            stages.append(Stage(groups=tuple(dict.fromkeys(groups))))
        else:
            raise InputError(f"stage {number}: give exactly one of 'percent' or 'groups'")
    return tuple(stages)


def bucket(rollout_id: int, serial: str) -> float:
    """Where ``serial`` falls for rollout ``rollout_id``: uniform in [0, 100)."""
    digest = hashlib.sha256(f"edgeward-rollout:{rollout_id}:{serial}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * 100 / 2**64


def stage_of(stages: Sequence[Stage], rollout_id: int, serial: str, group: str | None
             ) -> int | None:
    """The first stage (0-based) that includes the gateway, or None if none does."""
    where = bucket(rollout_id, serial)
    for index, stage in enumerate(stages):
        if stage.percent is not None and where < stage.percent:
            return index
        if group is not None and group in stage.groups:
            return index
    return None
