"""What a gateway should install: the pure choice, stage membership, and the DB wrapper."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.errors import InputError
from edgeward.server.db.engine import Database
from edgeward.server.db.models import Gateway, GatewayUpdate, UpdateEvent
from edgeward.server.services import desired, groups, releases, stages
from edgeward.server.services.desired import Candidate, Device, Gate, Policy, choose
from edgeward.server.services.stages import Stage
from tests.server.test_releases import MODEL, NOW, add_gateway, db, entry, people

__all__ = ["db"]  # the fixture, shared

LADDER = (Candidate("1.0", "stable", 1, 1), Candidate("1.1", "candidate", 1, 2),
          Candidate("1.2", "beta", 1, 3), Candidate("1.3", "edge", 1, 4))
SERIALS = [f"gw-{i:05d}" for i in range(4000)]


DEFAULT = Policy()


def pick(policy: Policy = DEFAULT, candidates: tuple[Candidate, ...] | list[Candidate] = LADDER,
         gates: tuple[Gate, ...] | list[Gate] = (), serial: str = "gw-1",
         installed: str | None = None, floor: int | None = None) -> str | None:
    return choose(Device(serial, installed, floor), policy, candidates, gates).version


def serial_in(percent: float, rollout_id: int, inside: bool) -> str:
    return next(s for s in SERIALS if (stages.bucket(rollout_id, s) < percent) == inside)


# -- the choice -------------------------------------------------------------------------


def test_no_release_means_nothing_to_install() -> None:
    answer = choose(Device("gw-1"), Policy(), [], [])
    assert answer.version is None and "no release" in answer.reason


def test_channels_take_the_more_conservative_ones_too() -> None:
    assert [pick(Policy(channel=c)) for c in releases.CHANNELS] == ["1.0", "1.1", "1.2", "1.3"]
    newer_stable = [*LADDER, Candidate("1.4", "stable", 1, 5)]
    assert pick(Policy(channel="beta"), newer_stable) == "1.4"  # the newest by seq wins
    with pytest.raises(InputError):
        pick(Policy(channel="nightly"))


def test_yanked_releases_are_never_offered() -> None:
    yanked = [LADDER[0], Candidate("1.5", "stable", 1, 9, yanked=True)]
    assert pick(Policy(), yanked) == "1.0"
    assert pick(Policy(pinned_version="1.5", group="h/g"), yanked) == "1.0"  # pin falls back


def test_pinned_version_wins_if_published() -> None:
    answer = choose(Device("gw-1"), Policy(channel="edge", pinned_version="1.1", group="h/g"),
                    LADDER, [])
    assert answer.version == "1.1" and "pinned" in answer.reason
    missing = choose(Device("gw-1"), Policy(pinned_version="9.9", group="h/g"), LADDER, [])
    assert missing.version == "1.0" and "9.9 is not published" in missing.reason
    below = [Candidate("1.0", "stable", 1, 1), Candidate("2.0", "stable", 3, 2)]
    assert pick(Policy(pinned_version="1.0", group="h/g"), below, floor=3) is None


def test_never_below_the_known_security_version() -> None:
    ladder = [Candidate("1.0", "stable", 2, 1), Candidate("1.1", "stable", 1, 2)]
    assert pick(Policy(), ladder) == "1.1"
    assert pick(Policy(), ladder, floor=2) == "1.0"
    assert pick(Policy(), ladder, floor=3) is None


def test_a_running_rollout_offers_its_release_to_reached_stages_only() -> None:
    gate = Gate(7, "1.1", "running", 0, (Stage(percent=30), Stage(percent=100)))
    inside, outside = serial_in(30, 7, True), serial_in(30, 7, False)
    ladder = [LADDER[0], Candidate("1.1", "stable", 1, 2)]
    inner = choose(Device(inside), Policy(), ladder, [gate])
    assert inner.version == "1.1" and inner.rollout_id == 7
    held = choose(Device(outside), Policy(), ladder, [gate])
    assert held.version == "1.0" and held.rollout_id is None and "held back" not in held.reason
    assert pick(Policy(), ladder[1:], [gate], serial=outside) is None
    for state in ("paused", "halted"):
        frozen = Gate(7, "1.1", state, 0, gate.stages)
        assert pick(Policy(), ladder, [frozen], serial=inside) == "1.1"
        assert pick(Policy(), ladder, [frozen], serial=outside) == "1.0"
    second = Gate(7, "1.1", "running", 1, gate.stages)
    assert pick(Policy(), ladder, [second], serial=outside) == "1.1"
    done = Gate(7, "1.1", "finished", 0, (Stage(percent=1),))
    assert pick(Policy(), ladder, [done], serial=outside) == "1.1"


def test_an_aborted_rollout_offers_its_release_to_no_new_gateway() -> None:
    ladder = [LADDER[0], Candidate("1.1", "stable", 1, 2)]
    aborted = Gate(3, "1.1", "aborted", 1, (Stage(percent=100),))
    assert pick(Policy(), ladder, [aborted]) == "1.0"
    assert pick(Policy(), ladder, [aborted], installed="1.1") == "1.1"  # stays on it
    restarted = Gate(4, "1.1", "finished", 0, (Stage(percent=5),))
    assert pick(Policy(), ladder, [aborted, restarted]) == "1.1"  # the latest rollout decides


def test_group_stages_follow_the_gateway_group() -> None:
    gate = Gate(5, "1.1", "running", 0, (Stage(groups=("hotels/lobby",)),
                                         Stage(percent=100)))
    ladder = [LADDER[0], Candidate("1.1", "stable", 1, 2)]
    assert pick(Policy(group="hotels/lobby"), ladder, [gate]) == "1.1"
    assert pick(Policy(group="other/lobby"), ladder, [gate], serial=serial_in(0.001, 5, False)
                ) == "1.0"


# -- stage membership -------------------------------------------------------------------


@settings(max_examples=200)
@given(st.integers(1, 2**31 - 1), st.text(string.ascii_letters + string.digits, min_size=1,
                                          max_size=64))
def test_buckets_are_deterministic_and_in_range(rollout_id: int, serial: str) -> None:
    where = stages.bucket(rollout_id, serial)
    assert 0 <= where < 100 and where == stages.bucket(rollout_id, serial)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True).map(sorted),
       st.integers(1, 10_000))
def test_percent_stages_are_cumulative_and_roughly_right(percents: list[int],
                                                         rollout_id: int) -> None:
    plan = tuple(Stage(percent=p) for p in percents)
    found = [stages.stage_of(plan, rollout_id, s, None) for s in SERIALS]
    for index, percent in enumerate(percents):
        reached = sum(1 for f in found if f is not None and f <= index)
        assert abs(reached / len(SERIALS) * 100 - percent) < 4  # 4,000 draws: within ~4.5 sd
    for serial, stage in zip(SERIALS[:200], found[:200], strict=True):
        if stage is not None:  # in a stage, so in every later one by percent
            assert stages.bucket(rollout_id, serial) < percents[stage]


def test_each_rollout_shuffles_anew() -> None:
    first = {s for s in SERIALS if stages.bucket(1, s) < 10}
    second = {s for s in SERIALS if stages.bucket(2, s) < 10}
    assert len(first & second) < len(first) / 3


def test_stage_validation() -> None:
    assert stages.parse([{"percent": 10}, {"groups": ["acme/lobby"]}, {"percent": 50},
                         {"percent": 100}])[1] == Stage(groups=("acme/lobby",))
    for bad in ([], [{"percent": 0}], [{"percent": 101}], [{"percent": 50}, {"percent": 50}],
                [{"percent": True}], [{"groups": []}], [{"groups": ["nogroup"]}],
                [{"percent": 5, "groups": ["a/b"]}], [{"size": 5}], [{"percent": "5"}],
                [{"percent": 1}] * 21):
        with pytest.raises(InputError):
            stages.parse(bad)


# -- the database wrapper -------------------------------------------------------------


def test_desired_with_no_releases_is_none(db: Database) -> None:
    gateway_id = add_gateway(db, "gw-1")
    with db.transaction() as s:
        answer = desired.desired(s, s.get_one(Gateway, gateway_id), NOW)
    assert answer == {"os": None, "reason": "no release available for channel stable",
                      "rollout_id": None, "window": "", "window_open": True,
                      "auto_update": True, "apps": []}


def test_desired_follows_the_group_and_offers_a_usable_delta(db: Database) -> None:
    who = people(db)
    hotels = who["hotels/admin"]
    gateway_id = add_gateway(db, "gw-1", hotels.tenant_id, running="1.0.0")
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "beta", delta_base="1.0.0"),
                          entry("1.2.0", "edge", delta_base="1.1.0"),
                          entry("2.0.0", model="ew-other")], NOW)
        groups.create(s, hotels, "lobby", {"channel": "beta", "window": "01:00-03:00",
                                           "auto_update": False}, NOW)
        groups.assign(s, hotels, "gw-1", "lobby", NOW)
    with db.transaction() as s:
        answer = desired.desired(s, s.get_one(Gateway, gateway_id), NOW)  # NOW is 12:00
    assert answer["os"] == {
        "version": "1.1.0", "model": MODEL, "security_version": 1, "channel": "beta",
        "kernel": "os/ew-gw1/1.1.0/kernel.img", "rootfs": "os/ew-gw1/1.1.0/rootfs.img",
        "delta": {"path": "os/ew-gw1/1.1.0/rootfs.delta-1.0.0.zst", "base_version": "1.0.0",
                  "base_sha384": entry("1.1.0", delta_base="1.0.0").delta_base_sha384}}
    assert (answer["window"], answer["window_open"], answer["auto_update"]) == (
        "01:00-03:00", False, False)
    with db.transaction() as s:
        groups.update(s, hotels, "lobby", {"channel": "edge"}, NOW)
    with db.transaction() as s:  # 1.2.0's delta is from 1.1.0, not what gw-1 runs
        answer = desired.desired(s, s.get_one(Gateway, gateway_id), NOW)
    assert answer["os"]["version"] == "1.2.0" and answer["os"]["delta"] is None
    with db.transaction() as s:
        groups.update(s, hotels, "lobby", {"pinned_version": "1.0.0"}, NOW)
    with db.transaction() as s:
        answer = desired.desired(s, s.get_one(Gateway, gateway_id), NOW)
    assert answer["os"]["version"] == "1.0.0" and "pinned" in answer["reason"]


def test_desired_respects_the_security_version_the_gateway_committed(db: Database) -> None:
    gateway_id = add_gateway(db, "gw-1")
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0", security_version=3)], NOW)
        releases.sync(s, [entry("1.0.0", security_version=3),
                          entry("1.1.0", security_version=2)], NOW)  # newer, yet lower
    with db.transaction() as s:
        assert desired.desired(s, s.get_one(Gateway, gateway_id), NOW)["os"]["version"] == "1.1.0"
        s.add(UpdateEvent(gateway_id=gateway_id, at=NOW, version="1.0.0", phase="committed",
                          detail=""))
        s.add(GatewayUpdate(gateway_id=gateway_id, version="1.0.0", phase="committed",
                            progress=100, detail="", updated_at=NOW))
    with db.transaction() as s:
        assert desired.desired(s, s.get_one(Gateway, gateway_id), NOW)["os"]["version"] == "1.0.0"


def test_a_group_of_another_tenant_is_ignored(db: Database) -> None:
    """A gateway handed to another tenant keeps a stale group id; it must not follow it."""
    who = people(db)
    gateway_id = add_gateway(db, "gw-1", who["hotels/admin"].tenant_id)
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", "edge")], NOW)
        groups.create(s, who["hotels/admin"], "edgy", {"channel": "edge"}, NOW)
        groups.assign(s, who["hotels/admin"], "gw-1", "edgy", NOW)
    with db.transaction() as s:
        gateway = s.get_one(Gateway, gateway_id)
        assert desired.desired(s, gateway, NOW)["os"]["version"] == "1.1.0"
        gateway.tenant_id = who["other/admin"].tenant_id  # as registry.assign does
    with db.transaction() as s:
        assert desired.desired(s, s.get_one(Gateway, gateway_id), NOW)["os"]["version"] == "1.0.0"
