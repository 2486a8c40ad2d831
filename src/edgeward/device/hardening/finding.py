"""One finding of the hardening audit: what was found, how bad, what to do about it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgeward.errors import InputError, one_line
from edgeward.trust.canonical import Fields

SEVERITIES = ("high", "medium", "low")
LIMITS = {"check": 64, "severity": 16, "title": 256, "detail": 1024, "advice": 1024}
FIELDS = tuple(LIMITS)


@dataclass(frozen=True)
class Finding:
    """``check`` is a stable id (``ssh.root-login``); ``detail`` says where (a path and a
    line, a port); ``advice`` what to do about it. Text quoted from the gateway's files
    is made one line (control characters escaped) and cut to a bounded length."""

    check: str
    severity: str
    title: str
    detail: str
    advice: str

    def __post_init__(self) -> None:
        for name, limit in LIMITS.items():
            object.__setattr__(self, name, one_line(getattr(self, name))[:limit])
        if self.severity not in SEVERITIES:
            raise InputError(f"finding {self.check!r}: severity {self.severity!r} is not one "
                             f"of {', '.join(SEVERITIES)}")

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}

    @classmethod
    def from_dict(cls, obj: Any) -> Finding:
        if not isinstance(obj, dict):
            raise InputError("a finding must be an object")
        f = Fields(obj, "finding", InputError).expect(set(FIELDS))
        return cls(*(f.str_(name, limit) for name, limit in LIMITS.items()))

    def sort_key(self) -> tuple[int, str, str]:
        return SEVERITIES.index(self.severity), self.check, self.detail


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by check id (and detail, for a stable order)."""
    return sorted(set(findings), key=Finding.sort_key)


def summary(findings: Iterable[Finding]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding.severity] += 1
    return counts
