"""The log-line quota per gateway, pure: its bucket refills at its rate, never above its
burst, one gateway's flood costs another nothing, and full buckets are forgotten."""

from __future__ import annotations

import datetime as dt

import pytest

from edgeward.server.services.logquota import LogQuota

T0 = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_the_burst_passes_then_the_rate() -> None:
    quota = LogQuota(burst=100, rate=10.0)
    assert quota.take(1, 60, at(0)) == 60
    assert quota.take(1, 60, at(0)) == 40  # the burst is spent
    assert quota.take(1, 60, at(0)) == 0
    assert quota.take(1, 60, at(3)) == 30  # three seconds at ten a second
    assert quota.take(2, 100, at(3)) == 100  # another gateway's own bucket
    assert quota.take(1, 500, at(3600)) == 100  # refilled, never above the burst
    assert quota.take(1, 5, at(1800)) == 0  # a clock gone back refills nothing


def test_full_buckets_are_forgotten_and_start_full_again() -> None:
    quota = LogQuota(burst=10, rate=1.0)  # full again ten seconds after its last take
    for gateway in range(2000):  # a fleet that logged once each, one a second
        quota.take(gateway, 3, at(gateway))
    assert quota.held() < 1024  # swept at 1,024: only the last ten seconds' stayed
    for gateway in range(2000, 2040):  # much later: the sweep forgets every earlier one
        quota.take(gateway, 3, at(9000))
    assert quota.held() <= 40
    assert quota.take(7, 10, at(9000)) == 10  # forgotten is full, as it would be
    assert quota.take(2001, 10, at(9000)) == 7  # a bucket in use is kept


@pytest.mark.parametrize(("burst", "rate"), [(0, 1.0), (10, 0.0), (10, -1.0)])
def test_a_quota_that_lets_nothing_through_is_refused(burst: int, rate: float) -> None:
    with pytest.raises(ValueError, match="burst of at least 1"):
        LogQuota(burst=burst, rate=rate)
