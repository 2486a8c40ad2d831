"""What gateways report about their OS updates: current phase, and a history.

Each report replaces the gateway's current state (phase, progress, detail);
a new phase or version is also appended to the history (progress within a
phase is not: a download reports often). An outcome (committed, rolled back,
failed) re-evaluates the rollouts of that release; a rollback or failure is an
alert for the gateway's tenant. A rollout id that is not one of this release
(a stale one, after an install the operator forced) is dropped, not refused:
the report itself still counts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import InputError
from edgeward.server.db.models import Gateway, GatewayUpdate, Rollout, UpdateEvent
from edgeward.server.services import alerts, rollouts
from edgeward.server.services.registry import iso
from edgeward.trust.targets import VERSION

PHASES = ("checking", "downloading", "writing", "verifying", "rebooting", "health-check",
          "committed", "rolled-back", "failed", "refused")
OUTCOMES = ("committed", *rollouts.FAILED)
MAX_DETAIL = 500


def report(session: Session, gateway: Gateway, version: str, phase: str, progress: int,
           detail: str, rollout_id: int | None, now: dt.datetime) -> GatewayUpdate:
    if not VERSION.match(version):
        raise InputError(f"version {version!r} is not a valid release version")
    if phase not in PHASES:
        raise InputError(f"phase {phase!r}: use one of {', '.join(PHASES)}")
    if isinstance(progress, bool) or not 0 <= progress <= 100:
        raise InputError("progress must be 0..100")
    if len(detail) > MAX_DETAIL:
        raise InputError(f"detail over {MAX_DETAIL} characters")
    if rollout_id is not None:  # only a hint (tallies go by version): kept if it fits
        rollout = session.get(Rollout, rollout_id)
        if rollout is None or (rollout.model, rollout.version) != (gateway.model, version):
            rollout_id = None
    current = session.get(GatewayUpdate, gateway.id)
    changed = current is None or (current.version, current.phase) != (version, phase)
    if current is None:
        current = GatewayUpdate(gateway_id=gateway.id)
        session.add(current)
    current.version, current.phase, current.progress = version, phase, progress
    current.detail, current.rollout_id, current.updated_at = detail, rollout_id, now
    if changed:
        session.add(UpdateEvent(gateway_id=gateway.id, at=now, version=version, phase=phase,
                                detail=detail, rollout_id=rollout_id))
        session.flush()
        if phase in rollouts.FAILED:
            alerts.raise_alert(session, gateway, "update-failed",
                               f"{gateway.serial}: update to {version} {phase}"
                               f"{': ' + detail if detail else ''}", now)
        if phase in OUTCOMES:
            rollouts.evaluate_release(session, gateway.model, version, now)
    return current


def current(session: Session, gateway: Gateway) -> dict[str, Any] | None:
    row = session.get(GatewayUpdate, gateway.id)
    if row is None:
        return None
    return {"version": row.version, "phase": row.phase, "progress": row.progress,
            "detail": row.detail, "rollout_id": row.rollout_id,
            "updated_at": iso(row.updated_at)}


def events(session: Session, gateway: Gateway, limit: int = 20) -> list[dict[str, Any]]:
    """The gateway's latest update events, newest first."""
    rows = session.execute(select(UpdateEvent).where(UpdateEvent.gateway_id == gateway.id)
                           .order_by(UpdateEvent.id.desc()).limit(max(1, min(limit, 500))))
    return [{"at": iso(e.at), "version": e.version, "phase": e.phase, "detail": e.detail,
             "rollout_id": e.rollout_id} for e in rows.scalars()]
