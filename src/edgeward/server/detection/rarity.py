"""Set anomalies: a listening port or a remote host a gateway was never seen with, and
that is rare in its cohort.

Every gateway of a cohort talks to the fleet server and its apps' cloud; a gateway that
opens a port none of them opens, or talks to a host none of them talks to, is worth an
alert (a backdoor, a beacon, a mining pool). While a gateway is still learning (its
first reports) only what is rare in a cohort large enough to say so is flagged.
Pure: sets and counts in, the new rare values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

RARE_SHARE = 0.05  # seen by fewer than this share of the cohort's other gateways
MIN_COHORT_LEARNING = 5  # a learning gateway is judged only by a cohort this large


def rare(count: int, cohort_size: int) -> bool:
    """Seen by ``count`` of the cohort's ``cohort_size`` other gateways: rare?"""
    return count < max(1.0, RARE_SHARE * cohort_size)


def new_and_rare(values: Iterable[str], known: set[str], seen_by_others: Mapping[str, int],
                 cohort_size: int, learning: bool) -> list[str]:
    """The values this gateway was never seen with that its cohort rarely has."""
    out = []
    for value in sorted(set(values) - known):
        if learning and cohort_size < MIN_COHORT_LEARNING:
            continue
        if rare(seen_by_others.get(value, 0), cohort_size):
            out.append(value)
    return out
