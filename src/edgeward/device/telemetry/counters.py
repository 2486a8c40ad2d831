"""Counters turned into what happened in an interval (pure).

The kernel's counters (CPU time, bytes and packets on the network, disk I/O) only go
up, until they do not: a reboot, a 32-bit counter that wraps, an interface that comes
back. A delta is ``current - previous``; where a counter went down it was reset, and
what it holds now is what happened since the reset (never a negative delta, never a
spike of 2**32). CPU busy percent comes from the CPU time counters the same way.
"""

from __future__ import annotations

from collections.abc import Mapping


def delta(previous: int | float, current: int | float) -> int | float:
    """What a monotonic counter counted between two readings (reset handled)."""
    return current - previous if current >= previous else current


def deltas(previous: Mapping[str, int | float], current: Mapping[str, int | float]
           ) -> dict[str, int | float]:
    """The delta of every counter present in both readings; a counter that appeared
    since (a new interface) counts from zero."""
    return {name: delta(previous.get(name, 0), value) for name, value in current.items()}


def busy_percent(previous: Mapping[str, float], current: Mapping[str, float]) -> float:
    """CPU busy share between two readings of the CPU time counters (``idle`` and
    ``iowait`` are not busy), 0..100; 0 when no time passed or a counter was reset."""
    spent = deltas(previous, current)
    if any(current.get(k, 0.0) < previous.get(k, 0.0) for k in current):
        return 0.0  # reset in between: the interval cannot be told apart
    total = sum(spent.values())
    if total <= 0:
        return 0.0
    idle = spent.get("idle", 0.0) + spent.get("iowait", 0.0)
    return round(max(0.0, min(100.0, 100.0 * (total - idle) / total)), 2)
