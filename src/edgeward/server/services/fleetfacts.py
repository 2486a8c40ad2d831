"""The facts the fleet audits judge (:mod:`.fleetaudit`), read from the database: a
principal's gateways with their update policy and revocation time, every gateway's
certificate (keys are compared across the whole fleet), open identity alerts, published
releases and rollouts of the models concerned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from edgeward.server.db.models import (
    Alert,
    AuditEvent,
    Gateway,
    GatewayGroup,
    OsRelease,
    Rollout,
    Tenant,
)
from edgeward.server.services import desired
from edgeward.server.services.authz import Principal
from edgeward.server.services.desired import Candidate, Gate
from edgeward.server.services.fleetaudit import IDENTITY_ALERTS, AlertFacts, GatewayFacts
from edgeward.server.services.registry import aware


@dataclass(frozen=True)
class Facts:
    mine: list[GatewayFacts]
    everyone: list[GatewayFacts]
    alerts: list[AlertFacts]
    releases: dict[str, Sequence[Candidate]]
    rollouts: dict[str, Sequence[Gate]]


def _maybe(when: dt.datetime | None) -> dt.datetime | None:
    return aware(when) if when is not None else None


def _facts(gateway: Gateway, group: GatewayGroup | None, tenant: str | None,
           revoked_at: dt.datetime | None) -> GatewayFacts:
    return GatewayFacts(
        id=gateway.id, serial=gateway.serial, model=gateway.model,
        tenant_id=gateway.tenant_id, status=gateway.status, cert_sha384=gateway.cert_sha384,
        cert_pem=gateway.cert_pem, attestation=gateway.attestation,
        attestation_detail=gateway.attestation_detail,
        attested_at=_maybe(gateway.attested_at), enrolled_at=aware(gateway.enrolled_at),
        last_seen_at=_maybe(gateway.last_seen_at), versions=dict(gateway.versions or {}),
        policy=desired.policy_of(gateway, group, tenant), revoked_at=_maybe(revoked_at))


def _scope(principal: Principal) -> ColumnElement[bool]:
    scope = principal.scope()
    result: ColumnElement[bool] = (Gateway.tenant_id.is_(None) if scope is None
                                   else Gateway.tenant_id == scope)
    return result


def _revocations(session: Session, serials: list[str]) -> dict[str, dt.datetime]:
    """When each of these (revoked) gateways was last revoked, by the audit log."""
    if not serials:
        return {}
    rows = session.execute(
        select(AuditEvent.target, func.max(AuditEvent.at))
        .where(AuditEvent.action == "gateway.revoke", AuditEvent.target.in_(serials))
        .group_by(AuditEvent.target)).all()
    return {target: aware(at) for target, at in rows}


def load(session: Session, principal: Principal, serial: str | None = None) -> Facts:
    """The facts about the principal's gateways (or only ``serial``, in its scope)."""
    query = (select(Gateway, GatewayGroup, Tenant.name)
             .outerjoin(GatewayGroup, Gateway.group_id == GatewayGroup.id)
             .outerjoin(Tenant, Gateway.tenant_id == Tenant.id)
             .where(_scope(principal)).order_by(Gateway.serial))
    if serial is not None:
        query = query.where(Gateway.serial == serial)
    rows = session.execute(query).all()
    revoked = _revocations(session, [g.serial for g, _, _ in rows if g.status == "revoked"])
    mine = [_facts(g, group, tenant, revoked.get(g.serial)) for g, group, tenant in rows]
    everyone = [GatewayFacts(id=i, serial=s, model="", tenant_id=t, status=st,
                             cert_sha384=sha, cert_pem=pem, attestation="",
                             attestation_detail="", attested_at=None,
                             enrolled_at=dt.datetime.min.replace(tzinfo=dt.UTC),
                             last_seen_at=None)
                for i, s, t, st, sha, pem in session.execute(
                    select(Gateway.id, Gateway.serial, Gateway.tenant_id, Gateway.status,
                           Gateway.cert_sha384, Gateway.cert_pem)).all()]
    ids = [g.id for g in mine]
    alerts = [AlertFacts(a.gateway_id or 0, a.kind, aware(a.at), a.detail)
              for a in session.execute(
                  select(Alert).where(Alert.gateway_id.in_(ids),
                                      Alert.kind.in_(tuple(IDENTITY_ALERTS)),
                                      Alert.status != "resolved",
                                      Alert.verdict.is_distinct_from("false-positive"))
              ).scalars()] if ids else []
    models = sorted({g.model for g in mine})
    releases: dict[str, list[Candidate]] = {}
    for row in session.execute(select(OsRelease).where(OsRelease.model.in_(models))
                               .order_by(OsRelease.seq)).scalars():
        releases.setdefault(row.model, []).append(desired.candidate(row))
    rollouts: dict[str, list[Gate]] = {}
    for rollout in session.execute(select(Rollout).where(Rollout.model.in_(models))).scalars():
        rollouts.setdefault(rollout.model, []).append(desired.gate(rollout))
    return Facts(mine, everyone, alerts, dict(releases), dict(rollouts))
