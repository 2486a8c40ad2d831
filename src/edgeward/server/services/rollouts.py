"""Staged rollouts of an OS release: advance on success, halt on failures.

States::

    running --pause--> paused --resume--> running
    running --(failure rate over the threshold)--> halted
    running --(last stage succeeded)--> finished
    running | paused | halted --abort--> aborted

A halted rollout offers its release to the stages it reached and no further;
only abort leaves it (a new rollout of the same release may then start).
Evaluation (:func:`evaluate`) runs whenever a gateway reports on the release
and whenever rollouts are read. It tallies, for each stage, the gateways
targeted (in the stage and following the release: its channel, not pinned,
automatic; or any that reported an outcome), those that committed it (or run
a newer release) and those whose last outcome was a rollback or a failure;
the decision is :func:`decide`, a pure function of those counts. Concurrent
evaluations are resolved by a guarded UPDATE: one of them moves the rollout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from edgeward.errors import Conflict, InputError, NotFound, StateError
from edgeward.server.db.models import (
    Alert,
    Gateway,
    GatewayGroup,
    OsRelease,
    Rollout,
    Tenant,
    UpdateEvent,
)
from edgeward.server.services import audit, desired, releases, stages
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.services.registry import aware, iso

STATES = ("running", "paused", "halted", "aborted", "finished")
ACTIVE = ("running", "paused", "halted")
FAILED = ("rolled-back", "failed")
MOVES: dict[str, dict[str, str]] = {
    "pause": {"running": "paused"},
    "resume": {"paused": "running"},
    "abort": {"running": "aborted", "paused": "aborted", "halted": "aborted"},
}
ACTOR = "server/rollouts"


# -- pure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    targeted: int = 0
    succeeded: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        return self.targeted - self.succeeded - self.failed

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.targeted + other.targeted, self.succeeded + other.succeeded,
                      self.failed + other.failed)

    def as_json(self) -> dict[str, int]:
        return {"targeted": self.targeted, "succeeded": self.succeeded,
                "failed": self.failed, "pending": self.pending}


@dataclass(frozen=True)
class Member:
    """One gateway of the rollout's model, as a tally sees it."""

    stage: int | None
    eligible: bool
    outcome: str | None  # "succeeded", "failed" or None (pending)
    tenant_id: int | None = None


@dataclass(frozen=True)
class Progress:
    state: str
    current_stage: int
    reason: str = ""
    advanced: int = 0


def tally(members: Sequence[Member], n_stages: int) -> list[Counts]:
    counts = [Counts() for _ in range(n_stages)]
    for m in members:
        if m.stage is None or not (m.eligible or m.outcome is not None):
            continue
        counts[m.stage] = counts[m.stage] + Counts(
            1, int(m.outcome == "succeeded"), int(m.outcome == "failed"))
    return counts


def decide(state: str, current_stage: int, per_stage: Sequence[Counts], error_threshold: int,
           success_threshold: int, stage_minutes: float,
           min_stage_minutes: int | None = None) -> Progress:
    """The rollout's next state from its stage counts (gateways targeted so far).

    Over ``error_threshold`` percent failed: halted. At least ``success_threshold``
    percent committed (and the stage old enough): the next stage, or finished after
    the last. A stage that targets nobody is passed at once.
    """
    if state != "running":
        return Progress(state, current_stage)
    stage, advanced, age = current_stage, 0, stage_minutes
    while True:
        so_far = sum(per_stage[: stage + 1], Counts())
        if so_far.targeted and so_far.failed * 100 > error_threshold * so_far.targeted:
            return Progress("halted", stage,
                            f"stage {stage + 1}: {so_far.failed} of {so_far.targeted} "
                            f"gateways failed or rolled back (over {error_threshold}%)",
                            advanced)
        empty = per_stage[stage].targeted == 0
        ripe = min_stage_minutes is None or age >= min_stage_minutes
        if not empty and not (ripe and so_far.succeeded * 100
                              >= success_threshold * so_far.targeted):
            return Progress("running", stage, "", advanced)
        if stage + 1 >= len(per_stage):
            return Progress("finished", stage, "", advanced)
        stage, advanced, age = stage + 1, advanced + 1, 0.0


def move(state: str, action: str) -> str:
    """The state an operator action leads to (StateError if it does not apply)."""
    target = MOVES.get(action, {}).get(state)
    if target is None:
        raise StateError(f"cannot {action} a rollout that is {state}")
    return target


# -- database -----------------------------------------------------------------------


@dataclass
class Snapshot:
    rollout: Rollout
    stages: tuple[stages.Stage, ...]
    members: list[Member] = field(default_factory=list)


def _members(session: Session, row: Rollout, plan: tuple[stages.Stage, ...],
             release: OsRelease | None) -> list[Member]:
    known = {r.version: r.seq for r in releases.for_model(session, row.model)}
    floor_seq = release.seq if release is not None else None
    outcome: dict[int, str] = {}
    for gateway_id, phase in session.execute(
            select(UpdateEvent.gateway_id, UpdateEvent.phase)
            .join(Gateway, UpdateEvent.gateway_id == Gateway.id)
            .where(UpdateEvent.version == row.version, Gateway.model == row.model,
                   UpdateEvent.phase.in_(("committed", *FAILED)))
            .order_by(UpdateEvent.id)).tuples():
        outcome[gateway_id] = "succeeded" if phase == "committed" else "failed"
    members = []
    for gateway, group, tenant in session.execute(
            select(Gateway, GatewayGroup, Tenant.name)
            .outerjoin(GatewayGroup, Gateway.group_id == GatewayGroup.id)
            .outerjoin(Tenant, GatewayGroup.tenant_id == Tenant.id)
            .where(Gateway.model == row.model, Gateway.status != "revoked")).tuples():
        policy = desired.policy_of(gateway, group, tenant)
        eligible = release is not None and policy.pinned_version is None and (
            policy.auto_update and releases.rank(release.channel)
            <= releases.rank(policy.channel))
        result = outcome.get(gateway.id)
        running = known.get((gateway.versions or {}).get("rootfs", ""))
        if result is None and floor_seq is not None and running is not None and (
                running >= floor_seq):
            result = "succeeded"
        members.append(Member(stages.stage_of(plan, row.id, gateway.serial, policy.group),
                              eligible, result, gateway.tenant_id))
    return members


def snapshot(session: Session, row: Rollout) -> Snapshot:
    plan = stages.parse(row.stages)
    release = releases.find(session, row.model, row.version)
    return Snapshot(row, plan, _members(session, row, plan, release))


def evaluate(session: Session, row: Rollout, now: dt.datetime) -> Snapshot:
    """Advance or halt a running rollout as its counts say; the counts it used."""
    snap = snapshot(session, row)
    if row.state != "running":
        return snap
    minutes = (now - aware(row.stage_started_at)).total_seconds() / 60
    verdict = decide(row.state, row.current_stage, tally(snap.members, len(snap.stages)),
                     row.error_threshold, row.success_threshold, minutes,
                     row.min_stage_minutes)
    if (verdict.state, verdict.current_stage) == (row.state, row.current_stage):
        return snap
    values: dict[str, Any] = {"state": verdict.state, "current_stage": verdict.current_stage,
                              "updated_at": now}
    if verdict.advanced:
        values["stage_started_at"] = now
    if verdict.state == "halted":
        values["halted_reason"] = verdict.reason
    moved = session.execute(
        update(Rollout).where(Rollout.id == row.id, Rollout.state == row.state,
                              Rollout.current_stage == row.current_stage)
        .values(**values).execution_options(synchronize_session=False))
    if moved.rowcount == 1:
        target = f"rollout/{row.id}"
        if verdict.advanced:
            audit.record(session, None, ACTOR, "rollout.advance", target, now,
                         stage=verdict.current_stage + 1)
        if verdict.state == "halted":
            detail = f"rollout {row.id} of {row.model} {row.version} halted: {verdict.reason}"
            session.add(Alert(tenant_id=None, gateway_id=None, kind="rollout-halted",
                              detail=detail, at=now))
            audit.record(session, None, ACTOR, "rollout.halt", target, now,
                         reason=verdict.reason)
        elif verdict.state == "finished":
            audit.record(session, None, ACTOR, "rollout.finish", target, now)
    session.refresh(row)
    return snap


def evaluate_release(session: Session, model: str, version: str, now: dt.datetime) -> None:
    for row in session.execute(select(Rollout).where(
            Rollout.model == model, Rollout.version == version,
            Rollout.state == "running")).scalars():
        evaluate(session, row, now)


def _bounded(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{name} must be {low}..{high}")
    return value


def check_groups(session: Session, plan: Sequence[Any]) -> None:
    """Every group a stage names exists (NotFound naming the first that does not)."""
    for ref in sorted({g for stage in plan for g in stage.groups}):
        tenant, _, name = ref.partition("/")
        if session.execute(select(GatewayGroup.id).join(
                Tenant, GatewayGroup.tenant_id == Tenant.id).where(
                Tenant.name == tenant, GatewayGroup.name == name)).first() is None:
            raise NotFound(f"no group {ref}")


def create(session: Session, principal: Principal, model: str, version: str,
           raw_stages: list[Any], now: dt.datetime, error_threshold: int = 20,
           success_threshold: int = 100, min_stage_minutes: int | None = None) -> Rollout:
    """(Platform) start rolling out a published release."""
    authorize(principal, Action.ROLLOUT_MANAGE)
    plan = stages.parse(raw_stages)
    _bounded("error_threshold", error_threshold, 0, 100)
    _bounded("success_threshold", success_threshold, 1, 100)
    if min_stage_minutes is not None:
        _bounded("min_stage_minutes", min_stage_minutes, 0, 60 * 24 * 30)
    release = releases.find(session, model, version)
    if release is None or release.yanked_at is not None:
        raise NotFound(f"no published release {version} of {model}")
    check_groups(session, plan)
    earlier = session.execute(select(Rollout.id, Rollout.state).where(
        Rollout.model == model, Rollout.version == version,
        Rollout.state != "aborted")).first()
    if earlier is not None:
        raise Conflict(f"{model} {version} already has rollout {earlier[0]} ({earlier[1]}); "
                       "abort it first")
    row = Rollout(model=model, version=version, stages=[s.as_json() for s in plan],
                  error_threshold=error_threshold, success_threshold=success_threshold,
                  min_stage_minutes=min_stage_minutes, state="running", current_stage=0,
                  stage_started_at=now, halted_reason="", created_by=principal.actor,
                  created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    audit.record(session, principal.tenant_id, principal.actor, "rollout.create",
                 f"rollout/{row.id}", now, model=model, version=version,
                 stages=row.stages)
    evaluate(session, row, now)
    return row


def act(session: Session, principal: Principal, rollout_id: int, action: str,
        now: dt.datetime) -> Rollout:
    """(Platform) pause, resume or abort a rollout."""
    authorize(principal, Action.ROLLOUT_MANAGE)
    row = session.get(Rollout, rollout_id)
    if row is None:
        raise NotFound(f"no rollout {rollout_id}")
    row.state = move(row.state, action)
    row.updated_at = now
    session.flush()
    audit.record(session, principal.tenant_id, principal.actor, f"rollout.{action}",
                 f"rollout/{row.id}", now)
    if row.state == "running":
        evaluate(session, row, now)
    return row


def find(session: Session, principal: Principal, rollout_id: int, now: dt.datetime
         ) -> Snapshot:
    authorize(principal, Action.RELEASE_READ)
    row = session.get(Rollout, rollout_id)
    if row is None:
        raise NotFound(f"no rollout {rollout_id}")
    return evaluate(session, row, now)


def visible(session: Session, principal: Principal, now: dt.datetime,
            state: str | None = None, limit: int = 50) -> list[Snapshot]:
    """Rollouts, newest first, each evaluated (a tenant sees its own gateways' counts)."""
    authorize(principal, Action.RELEASE_READ)
    query = select(Rollout).order_by(Rollout.id.desc()).limit(max(1, min(limit, 500)))
    if state is not None:
        if state not in STATES:
            raise InputError(f"state {state!r}: use one of {', '.join(STATES)}")
        query = query.where(Rollout.state == state)
    return [evaluate(session, row, now) for row in session.execute(query).scalars()]


def describe(snap: Snapshot, principal: Principal) -> dict[str, Any]:
    """The rollout with per-stage counts; a tenant sees only its own gateways and groups."""
    row = snap.rollout
    mine = snap.members if principal.platform else [
        m for m in snap.members if m.tenant_id == principal.tenant_id]
    counts = tally(mine, len(snap.stages))
    prefix = f"{principal.tenant}/"
    shown = []
    for index, (stage, count) in enumerate(zip(snap.stages, counts, strict=True)):
        body: dict[str, Any] = stage.as_json()
        if stage.percent is None and not principal.platform:
            body["groups"] = [g for g in stage.groups if g.startswith(prefix)]
        body.update(count.as_json(),
                    reached=row.state == "finished" or index <= row.current_stage)
        shown.append(body)
    return {
        "id": row.id, "model": row.model, "version": row.version, "state": row.state,
        "current_stage": row.current_stage, "stages": shown,
        "totals": sum(counts, Counts()).as_json(),
        "error_threshold": row.error_threshold, "success_threshold": row.success_threshold,
        "min_stage_minutes": row.min_stage_minutes, "halted_reason": row.halted_reason or None,
        "created_by": row.created_by, "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at), "stage_started_at": iso(row.stage_started_at),
    }
