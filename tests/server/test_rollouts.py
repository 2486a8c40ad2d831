"""Rollouts: the pure decision, the state machine, and evaluation over a real database."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from edgeward.errors import Conflict, InputError, NotFound, PermissionDenied, StateError
from edgeward.server.db.engine import Database
from edgeward.server.db.models import AuditEvent, Gateway, Rollout
from edgeward.server.services import alerts, desired, groups, releases, rollouts, stages, updates
from edgeward.server.services.authz import Principal
from edgeward.server.services.rollouts import Counts, Member, decide, move, tally
from tests.server.test_releases import MODEL, NOW, add_gateway, db, entry, people

__all__ = ["db"]


# -- pure -------------------------------------------------------------------------------


def test_decide_advances_on_success_and_finishes_after_the_last_stage() -> None:
    two = [Counts(2, 2, 0), Counts(3, 0, 0)]
    assert decide("running", 0, two, 20, 100, 0) == rollouts.Progress("running", 1, "", 1)
    assert decide("running", 1, [Counts(2, 2, 0), Counts(3, 3, 0)], 20, 100, 0).state == (
        "finished")
    assert decide("running", 0, [Counts(4, 3, 0), Counts(1, 0, 0)], 20, 75, 0).current_stage == 1
    assert decide("running", 0, [Counts(4, 2, 0), Counts(1, 0, 0)], 20, 75, 0).current_stage == 0


def test_decide_passes_empty_stages_and_halts_over_the_error_threshold() -> None:
    empty = [Counts(), Counts(), Counts(2, 0, 0)]
    assert decide("running", 0, empty, 20, 100, 0) == rollouts.Progress("running", 2, "", 2)
    assert decide("running", 0, [Counts(), Counts()], 20, 100, 0).state == "finished"
    halted = decide("running", 0, [Counts(4, 1, 1), Counts(5, 0, 0)], 20, 100, 0)
    assert halted.state == "halted" and "1 of 4" in halted.reason and "20%" in halted.reason
    at_threshold = decide("running", 0, [Counts(5, 1, 1), Counts(5, 0, 0)], 20, 100, 0)
    assert at_threshold.state == "running"  # 20% is not over 20%
    cumulative = decide("running", 1, [Counts(5, 5, 0), Counts(1, 0, 1)], 10, 100, 0)
    assert cumulative.state == "halted"  # 1 of 6 targeted so far: 16.7% > 10%


def test_decide_waits_for_the_minimum_stage_time() -> None:
    done = [Counts(2, 2, 0), Counts(2, 0, 0)]
    assert decide("running", 0, done, 20, 100, 29.9, 30).current_stage == 0
    assert decide("running", 0, done, 20, 100, 30, 30).current_stage == 1
    # the stage it advances into has just started: it waits there, even if done already
    assert decide("running", 0, [Counts(1, 1, 0), Counts(1, 1, 0)], 20, 100, 60, 30
                  ).current_stage == 1


@given(st.sampled_from(["paused", "halted", "aborted", "finished"]),
       st.lists(st.builds(Counts, st.integers(0, 5), st.integers(0, 5)), min_size=1,
                max_size=4))
def test_only_a_running_rollout_moves(state: str, counts: list[Counts]) -> None:
    assert decide(state, 0, counts, 20, 100, 10**6) == rollouts.Progress(state, 0)


def test_the_state_machine() -> None:
    assert move("running", "pause") == "paused"
    assert move("paused", "resume") == "running"
    for state in ("running", "paused", "halted"):
        assert move(state, "abort") == "aborted"
    for state, action in (("paused", "pause"), ("running", "resume"), ("halted", "resume"),
                          ("halted", "pause"), ("aborted", "resume"), ("finished", "abort"),
                          ("aborted", "abort"), ("running", "explode")):
        with pytest.raises(StateError):
            move(state, action)


def test_tally_counts_the_eligible_and_those_with_an_outcome() -> None:
    members = [Member(0, True, None), Member(0, True, "succeeded"), Member(0, False, None),
               Member(1, False, "failed"), Member(None, True, "failed"), Member(1, True, None)]
    assert tally(members, 2) == [Counts(2, 1, 0), Counts(2, 0, 1)]


# -- over the database ----------------------------------------------------------------


def fleet_of(db: Database, count: int, tenant_id: int | None) -> list[str]:
    serials = [f"gw-{i:03d}" for i in range(count)]
    for serial in serials:
        add_gateway(db, serial, tenant_id, running="1.0.0")
    return serials


def publish(db: Database) -> None:
    with db.transaction() as s:
        releases.sync(s, [entry("1.0.0")], NOW)
        releases.sync(s, [entry("1.0.0"), entry("1.1.0", security_version=2)], NOW)


def report(db: Database, serial: str, phase: str, rollout_id: int | None,
           now: dt.datetime = NOW) -> None:
    with db.transaction() as s:
        gateway = s.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one()
        updates.report(s, gateway, "1.1.0", phase, 100, "", rollout_id, now)


def offered(db: Database, serial: str) -> str | None:
    with db.transaction() as s:
        gateway = s.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one()
        answer = desired.desired(s, gateway, NOW)
        return None if answer["os"] is None else str(answer["os"]["version"])


def read(db: Database, who: Principal, rollout_id: int, now: dt.datetime = NOW
         ) -> dict[str, object]:
    with db.transaction() as s:
        return rollouts.describe(rollouts.find(s, who, rollout_id, now), who)


def start(db: Database, who: Principal, raw: list[dict[str, object]], **kw: int) -> int:
    with db.transaction() as s:
        return rollouts.create(s, who, MODEL, "1.1.0", raw, NOW, **kw).id


def in_first(serials: list[str], rollout_id: int, percent: int) -> list[str]:
    return [s for s in serials if stages.bucket(rollout_id, s) < percent]


def test_only_the_platform_starts_rollouts(db: Database) -> None:
    who = people(db)
    publish(db)
    for name in ("hotels/admin", "hotels/viewer", "platform/viewer"):
        with db.transaction() as s, pytest.raises(PermissionDenied):
            rollouts.create(s, who[name], MODEL, "1.1.0", [{"percent": 10}], NOW)
    with db.transaction() as s:
        rollout = rollouts.create(s, who["platform/admin"], MODEL, "1.1.0", [{"percent": 10}],
                                  NOW)
        with pytest.raises(PermissionDenied):
            rollouts.act(s, who["hotels/admin"], rollout.id, "pause", NOW)
    with db.transaction() as s:  # reading is for every viewer
        rollouts.find(s, who["hotels/viewer"], rollout.id, NOW)


def test_creation_is_validated(db: Database) -> None:
    who = people(db)
    platform = who["platform/admin"]
    fleet_of(db, 1, None)  # one gateway (in the unassigned pool): the rollout does not finish
    publish(db)
    for raw, error in (([{"percent": 50}, {"percent": 10}], InputError),
                       ([{"groups": ["hotels/nope"]}], NotFound)):
        with db.transaction() as s, pytest.raises(error):
            rollouts.create(s, platform, MODEL, "1.1.0", raw, NOW)
    with db.transaction() as s, pytest.raises(NotFound):
        rollouts.create(s, platform, MODEL, "9.9.9", [{"percent": 10}], NOW)
    with db.transaction() as s, pytest.raises(InputError):
        rollouts.create(s, platform, MODEL, "1.1.0", [{"percent": 10}], NOW,
                        error_threshold=101)
    first = start(db, platform, [{"percent": 10}, {"percent": 100}])
    with db.transaction() as s, pytest.raises(Conflict):
        rollouts.create(s, platform, MODEL, "1.1.0", [{"percent": 10}], NOW)
    with db.transaction() as s:
        rollouts.act(s, platform, first, "abort", NOW)
    assert start(db, platform, [{"percent": 100}]) > first  # after an abort, a new one


def test_a_rollout_advances_as_gateways_commit_and_finishes(db: Database) -> None:
    who = people(db)
    platform, hotels = who["platform/admin"], who["hotels/admin"]
    serials = fleet_of(db, 30, hotels.tenant_id)
    publish(db)
    rollout_id = start(db, platform, [{"percent": 20}, {"percent": 100}])
    first = in_first(serials, rollout_id, 20)
    assert 0 < len(first) < 30
    rest = [s for s in serials if s not in first]
    assert offered(db, first[0]) == "1.1.0" and offered(db, rest[0]) == "1.0.0"
    shown = read(db, platform, rollout_id)
    assert shown["stages"][0] == {"percent": 20, "targeted": len(first), "succeeded": 0,
                                  "failed": 0, "pending": len(first), "reached": True}
    for serial in first[:-1]:
        report(db, serial, "committed", rollout_id)
    assert read(db, platform, rollout_id)["current_stage"] == 0  # 100% must have committed
    report(db, first[-1], "downloading", rollout_id)
    report(db, first[-1], "committed", rollout_id)
    shown = read(db, platform, rollout_id)
    assert (shown["state"], shown["current_stage"]) == ("running", 1)
    assert offered(db, rest[0]) == "1.1.0"
    for serial in rest:
        report(db, serial, "committed", rollout_id)
    shown = read(db, platform, rollout_id)
    assert shown["state"] == "finished" and shown["totals"]["succeeded"] == 30
    with db.transaction() as s:
        automatic = [e.action for e in s.execute(select(AuditEvent).where(
            AuditEvent.actor == rollouts.ACTOR)).scalars()]
    assert automatic == ["rollout.advance", "rollout.finish"]


def test_a_failure_rate_over_the_threshold_halts_and_alerts(db: Database) -> None:
    who = people(db)
    platform, hotels = who["platform/admin"], who["hotels/admin"]
    serials = fleet_of(db, 40, hotels.tenant_id)
    publish(db)
    rollout_id = start(db, platform, [{"percent": 25}, {"percent": 100}], error_threshold=10)
    first = in_first(serials, rollout_id, 25)
    outside = next(s for s in serials if s not in first)
    assert len(first) >= 4
    report(db, first[0], "rolled-back", rollout_id)
    shown = read(db, platform, rollout_id)
    assert shown["state"] == "halted" and "1 of" in str(shown["halted_reason"])
    assert offered(db, first[1]) == "1.1.0"  # the stage it reached keeps it
    assert offered(db, outside) == "1.0.0"  # no further stage
    for serial in first[1:]:
        report(db, serial, "committed", rollout_id)
    assert read(db, platform, rollout_id)["state"] == "halted"  # stays halted
    with db.transaction() as s:
        platform_alerts = [(a.kind, a.detail) for a, _ in alerts.visible(s, platform)]
        tenant_alerts = [(a.kind, serial) for a, serial in alerts.visible(s, hotels)]
    assert [k for k, _ in platform_alerts] == ["rollout-halted"]
    assert f"rollout {rollout_id}" in platform_alerts[0][1]
    assert tenant_alerts == [("update-failed", first[0])]  # the tenant hears of its gateway
    with db.transaction() as s, pytest.raises(StateError):
        rollouts.act(s, platform, rollout_id, "resume", NOW)
    with db.transaction() as s:
        rollouts.act(s, platform, rollout_id, "abort", NOW)


def test_pause_stops_the_advance_and_resume_catches_up(db: Database) -> None:
    who = people(db)
    platform = who["platform/admin"]
    serials = fleet_of(db, 20, who["hotels/admin"].tenant_id)
    publish(db)
    rollout_id = start(db, platform, [{"percent": 30}, {"percent": 100}])
    with db.transaction() as s:
        rollouts.act(s, platform, rollout_id, "pause", NOW)
    for serial in in_first(serials, rollout_id, 30):
        report(db, serial, "committed", rollout_id)
    shown = read(db, platform, rollout_id)
    assert (shown["state"], shown["current_stage"]) == ("paused", 0)
    assert shown["stages"][0]["pending"] == 0
    with db.transaction() as s:
        rollouts.act(s, platform, rollout_id, "resume", NOW)
    shown = read(db, platform, rollout_id)
    assert (shown["state"], shown["current_stage"]) == ("running", 1)
    with db.transaction() as s:
        actions = [e.action for e in s.execute(select(AuditEvent).where(
            AuditEvent.actor == platform.actor).order_by(AuditEvent.id)).scalars()]
    assert actions == ["rollout.create", "rollout.pause", "rollout.resume"]


def test_abort_makes_the_release_unavailable_to_new_gateways(db: Database) -> None:
    who = people(db)
    platform = who["platform/admin"]
    serials = fleet_of(db, 10, who["hotels/admin"].tenant_id)
    publish(db)
    rollout_id = start(db, platform, [{"percent": 100}])
    report(db, serials[0], "committed", rollout_id)
    with db.transaction() as s:
        s.execute(select(Gateway).where(Gateway.serial == serials[0])).scalar_one(
        ).versions = {"rootfs": "1.1.0"}
        rollouts.act(s, platform, rollout_id, "abort", NOW)
    assert offered(db, serials[1]) == "1.0.0"
    assert offered(db, serials[0]) == "1.1.0"  # the one that has it stays on it
    with db.transaction() as s, pytest.raises(StateError):
        rollouts.act(s, platform, rollout_id, "resume", NOW)


def test_group_stages_and_what_a_tenant_sees(db: Database) -> None:
    who = people(db)
    platform, hotels, other = who["platform/admin"], who["hotels/admin"], who["other/admin"]
    fleet_of(db, 3, hotels.tenant_id)
    add_gateway(db, "gw-other", other.tenant_id, running="1.0.0")
    publish(db)
    with db.transaction() as s:
        groups.create(s, hotels, "lobby", {}, NOW)
        groups.assign(s, hotels, "gw-001", "lobby", NOW)
        groups.create(s, other, "canary", {}, NOW)
        groups.assign(s, other, "gw-other", "canary", NOW)
    rollout_id = start(db, platform, [{"groups": ["hotels/lobby", "other/canary"]},
                                      {"percent": 100}], min_stage_minutes=60)
    assert offered(db, "gw-001") == "1.1.0" and offered(db, "gw-other") == "1.1.0"
    assert offered(db, "gw-002") == "1.0.0"
    report(db, "gw-001", "committed", rollout_id)
    report(db, "gw-other", "committed", rollout_id)
    assert read(db, platform, rollout_id)["current_stage"] == 0  # not an hour yet
    later = NOW + dt.timedelta(minutes=61)
    assert read(db, platform, rollout_id, later)["current_stage"] == 1
    mine = read(db, hotels, rollout_id, later)
    assert mine["stages"][0]["groups"] == ["hotels/lobby"]  # not the other tenant's group
    assert mine["stages"][0]["targeted"] == 1 and mine["totals"]["targeted"] == 3
    assert read(db, platform, rollout_id, later)["totals"]["targeted"] == 4


def test_pinned_and_manual_gateways_do_not_hold_a_stage(db: Database) -> None:
    who = people(db)
    hotels = who["hotels/admin"]
    add_gateway(db, "gw-pinned", hotels.tenant_id, running="1.0.0")
    add_gateway(db, "gw-manual", hotels.tenant_id, running="1.0.0")
    publish(db)
    with db.transaction() as s:
        groups.create(s, hotels, "frozen", {"pinned_version": "1.0.0"}, NOW)
        groups.assign(s, hotels, "gw-pinned", "frozen", NOW)
        groups.create(s, hotels, "manual", {"auto_update": False}, NOW)
        groups.assign(s, hotels, "gw-manual", "manual", NOW)
    rollout_id = start(db, who["platform/admin"], [{"percent": 100}])
    shown = read(db, who["platform/admin"], rollout_id)
    assert shown["state"] == "finished" and shown["totals"]["targeted"] == 0
    with db.transaction() as s:
        assert s.get_one(Rollout, rollout_id).state == "finished"
