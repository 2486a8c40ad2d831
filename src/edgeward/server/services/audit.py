"""The audit log: every operator action, per tenant, append-only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import AuditEvent
from edgeward.server.services.authz import Action, Principal, authorize


def record(session: Session, tenant_id: int | None, actor: str, action: str, target: str,
           now: dt.datetime, **detail: Any) -> None:
    session.add(AuditEvent(tenant_id=tenant_id, actor=actor, action=action, target=target,
                           detail=detail, at=now))


def events(session: Session, principal: Principal, limit: int = 100) -> list[AuditEvent]:
    authorize(principal, Action.AUDIT_READ)
    mine = AuditEvent.tenant_id == principal.tenant_id
    if principal.platform:  # and what happened in the unassigned pool
        mine = or_(mine, AuditEvent.tenant_id.is_(None))
    return list(session.execute(
        select(AuditEvent).where(mine)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(min(limit, 1000))
    ).scalars())
