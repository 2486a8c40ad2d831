"""Operators' rules: ``metric op threshold for duration`` (e.g. an app's CPU above 80%
for 2 minutes). The condition must hold at every sample for ``duration`` seconds; the
rule then fires once, and again only after the condition has been false. Pure.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeward.errors import InputError

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    app: str  # "" the gateway's metric, "*" any app's, else that app's
    op: str
    threshold: float
    duration: float  # seconds

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InputError(f"rule {self.name}: op must be one of {', '.join(OPS)}")
        if not 0 <= self.duration <= 86400:
            raise InputError(f"rule {self.name}: duration must be 0..86400 seconds")

    def holds(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        of = f" of app {self.app}" if self.app not in ("", "*") else (
            " of any app" if self.app == "*" else "")
        return f"{self.metric}{of} {self.op} {self.threshold:g} for {self.duration:g} s"


@dataclass
class RuleClock:
    """When the condition began holding (None: it does not), and whether it fired."""

    since: float | None = None
    fired: bool = False

    def observe(self, rule: Rule, value: float, at: float) -> bool:
        """Feed one sample at ``at``; True when the rule fires now."""
        if not rule.holds(value):
            self.since, self.fired = None, False
            return False
        if self.since is None:
            self.since = at
        if not self.fired and at - self.since >= rule.duration:
            self.fired = True
            return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "fired": self.fired}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleClock:
        since = data.get("since")
        return cls(float(since) if since is not None else None, bool(data.get("fired")))
