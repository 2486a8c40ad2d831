"""The log-line quota per gateway, pure: a batch passes whole or waits the seconds its
bucket needs; the bucket refills at its rate, never above its burst; one gateway's flood
costs another nothing; pressing against it for ten minutes is a flood, a catch-up that
ends sooner is not; full buckets are forgotten; and the Retry-After a gateway believes
is bounded."""

from __future__ import annotations

import datetime as dt

import pytest

from edgeward.api_client import retry_after
from edgeward.server.services.logquota import FLOOD_AFTER, LogQuota, admit

T0 = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_a_batch_passes_whole_or_is_told_when_it_would() -> None:
    quota = LogQuota(burst=100, rate=10.0)
    assert quota.take(1, 60, at(0)).admitted
    refused = quota.take(1, 60, at(0))  # 40 left: not a line of it is taken
    assert not refused.admitted and refused.retry_after == pytest.approx(2.0)
    assert not refused.flooding
    assert quota.take(1, 40, at(0)).admitted  # what was left is still there
    assert not quota.take(1, 30, at(2.9)).admitted  # 29 by then
    assert quota.take(1, 30, at(3)).admitted  # three seconds at ten a second
    assert quota.take(2, 100, at(3)).admitted  # another gateway's own bucket
    assert quota.take(1, 100, at(3600)).admitted  # refilled, never above the burst
    assert not quota.take(1, 1, at(3600)).admitted
    assert not quota.take(1, 5, at(1800)).admitted  # a clock gone back refills nothing


def test_the_bucket_is_pure_and_a_batch_over_the_burst_passes_on_a_full_one() -> None:
    assert admit(100.0, T0, T0, 150, 100, 10.0) == (True, -50.0, 0.0)  # the excess owed
    assert admit(-50.0, T0, at(10), 100, 100, 10.0) == (False, 50.0, 5.0)
    assert admit(-50.0, T0, at(15), 100, 100, 10.0) == (True, 0.0, 0.0)


def test_a_loop_is_a_flood_after_ten_minutes_and_a_catch_up_is_not() -> None:
    quota = LogQuota(burst=5000, rate=50.0)
    now, refused, flooded = 0.0, None, None
    while flooded is None and now < 3600:  # an app in a loop: 500 lines whenever let
        verdict = quota.take(1, 500, at(now))
        if not verdict.admitted and refused is None:
            refused = now  # the burst is spent
        if verdict.flooding:
            flooded = now
        now += verdict.retry_after if not verdict.admitted else 2.0
    assert refused is not None and flooded is not None
    assert FLOOD_AFTER.total_seconds() <= flooded - refused < FLOOD_AFTER.total_seconds() + 20
    now = 0.0
    for _outage in range(2):  # an hour's lines at 5 a second, after each of two outages
        backlog, waited = 18_000, 0
        while backlog:
            verdict = quota.take(2, min(500, backlog), at(now))
            assert not verdict.flooding  # each catch-up takes under ten minutes
            if verdict.admitted:
                backlog -= min(500, backlog)
            waited += not verdict.admitted
            now += verdict.retry_after if not verdict.admitted else 2.0
        assert waited > 20  # it was held back
        for _ in range(60):  # caught up: small batches, and the bucket fills again
            assert quota.take(2, 10, at(now)).admitted
            now += 2.0


def test_full_buckets_are_forgotten_and_start_full_again() -> None:
    quota = LogQuota(burst=10, rate=1.0)  # full again ten seconds after its last take
    for gateway in range(2000):  # a fleet that logged once each, one a second
        quota.take(gateway, 3, at(gateway))
    assert quota.held() < 1024  # swept at 1,024: only the last ten seconds' stayed
    for gateway in range(2000, 2040):  # much later: the sweep forgets every earlier one
        quota.take(gateway, 3, at(9000))
    assert quota.held() <= 40
    assert quota.take(7, 10, at(9000)).admitted  # forgotten is full, as it would be
    assert not quota.take(2001, 10, at(9000)).admitted  # a bucket in use is kept


@pytest.mark.parametrize(("burst", "rate"), [(0, 1.0), (10, 0.0), (10, -1.0)])
def test_a_quota_that_lets_nothing_through_is_refused(burst: int, rate: float) -> None:
    with pytest.raises(ValueError, match="burst of at least 1"):
        LogQuota(burst=burst, rate=rate)


@pytest.mark.parametrize(("header", "seconds"), [
    ("4", 4.0), ("0", 1.0), ("-5", 1.0), ("100000", 300.0), ("inf", 300.0), ("nan", 1.0),
    ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0), (None, 1.0)])
def test_a_gateway_believes_a_retry_after_within_bounds(header: str | None,
                                                        seconds: float) -> None:
    """A server (or whatever answers in its place) cannot park a gateway's logs for
    days, nor make it hammer with no wait."""
    assert retry_after(header) == seconds
