"""The detectors, run on each report as it is stored.

- every watched metric (the gateway's and each app's) through its :class:`MetricWatch`,
  whose state is a ``detector_state`` row: the cohort's prior for a gateway's first
  samples, the cohort's level now to tell a shared shift from this gateway's own;
- a listening port or remote host new to the gateway and rare in its cohort;
- the tenant's rules.

What they find becomes an alert (each kind once per gateway and app per quiet window);
a cohort that shifts at once becomes one notice for the tenant, not an alert per
gateway.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from edgeward.errors import InputError
from edgeward.server.db.models import Alert, Gateway
from edgeward.server.db.monitoring import AlertRule, DetectorState, Endpoint, GatewayMonitor
from edgeward.server.detection import metrics
from edgeward.server.detection.baseline import Prior
from edgeward.server.detection.rarity import new_and_rare
from edgeward.server.detection.rules import Rule, RuleClock
from edgeward.server.detection.watch import MetricWatch, Signal
from edgeward.server.services import alerts
from edgeward.server.services.cohorts import Cohorts

ENDPOINT_TITLES = {"listen": "a new listening port", "remote": "a new remote host"}


def judge(session: Session, cohorts: Cohorts, gateway: Gateway, monitor: GatewayMonitor,
          values: dict[str, float], at: dt.datetime, fresh: bool,
          new: dict[str, list[tuple[str, str, str]]], learning: bool) -> int:
    """Run every detector on one report; return how many alerts it raised."""
    states = {s.key: s for s in session.execute(
        select(DetectorState).where(DetectorState.gateway_id == gateway.id)).scalars()}
    raised = _metrics(session, cohorts, gateway, monitor.cohort, values, at, fresh, states)
    raised += endpoints(session, gateway, monitor, new, at, learning)
    raised += _rules(session, gateway, values, at, states)
    return raised


def _metrics(session: Session, cohorts: Cohorts, gateway: Gateway, cohort: str,
             values: dict[str, float], at: dt.datetime, fresh: bool,
             states: dict[str, DetectorState]) -> int:
    raised, stamp, watched = 0, at.timestamp(), {}
    for key, value in sorted(values.items()):
        spec = metrics.spec_of(key)
        if spec is None or len(key) > 100:
            continue
        watched[key] = value
        prior = cohorts.prior(cohort, key, gateway.serial)
        row = states.get(key)
        watch = _restored(key, row, prior)
        signals = watch.observe(value, cohorts.level(cohort, key, gateway.serial, stamp), fresh)
        if row is None:
            row = DetectorState(gateway_id=gateway.id, key=key, state={}, anomalous=False)
            session.add(row)
            states[key] = row
        if watch.baseline.anomalous and not row.anomalous:
            row.opened_at = at
        row.state, row.anomalous, row.updated_at = watch.to_dict(), \
            watch.baseline.anomalous, at
        cohorts.learnt(cohort, gateway.serial, key, watch.baseline.centre()[0])
        for signal in signals:
            raised += _alert(session, gateway, cohort, signal, at)
    cohorts.record(cohort, gateway.serial, stamp, watched)
    return raised


def _restored(key: str, row: DetectorState | None, prior: Prior | None) -> MetricWatch:
    """The watch as stored, or a new one (a state that no longer reads, written by an
    older server, starts afresh from the cohort's prior rather than refuse the report)."""
    if row is not None:
        try:
            return MetricWatch.from_dict(key, dict(row.state), prior)
        except InputError:
            pass
    return MetricWatch.new(key, prior)


def _alert(session: Session, gateway: Gateway, cohort: str, signal: Signal,
           at: dt.datetime) -> int:
    _, metric = metrics.split(signal.key)
    evidence: dict[str, Any] = {"metric": signal.key, "value": signal.value,
                                "expected": signal.expected, "z": signal.z,
                                "signal": signal.kind, "cohort": cohort}
    if signal.kind in ("anomaly", "drift"):
        made = alerts.raise_alert(
            session, gateway, f"{signal.kind}.{metric}",
            f"{gateway.serial}: {signal.describe()}", at, severity=signal.severity,
            app=signal.app, source="baseline" if signal.kind == "anomaly" else "drift",
            evidence=evidence)
        return 1 if made is not None else 0
    if signal.kind == "cohort-shift":
        return _cohort_notice(session, gateway, cohort, signal, at, evidence)
    return 0  # recovered, after-change: the state says it; nobody need be woken


def _cohort_notice(session: Session, gateway: Gateway, cohort: str, signal: Signal,
                   at: dt.datetime, evidence: dict[str, Any]) -> int:
    """One notice per tenant, cohort and metric per quiet window."""
    kind = f"cohort-shift.{signal.key}"[:64]
    recent = session.execute(select(Alert.id).where(
        Alert.tenant_id.is_(None) if gateway.tenant_id is None
        else Alert.tenant_id == gateway.tenant_id,
        Alert.kind == kind, Alert.detail.like(f"cohort {cohort}:%"),
        Alert.at >= at - alerts.QUIET).limit(1)).first()
    if recent is not None:
        return 0
    shifted = session.execute(select(func.count()).select_from(DetectorState).join(
        GatewayMonitor, GatewayMonitor.gateway_id == DetectorState.gateway_id).where(
        GatewayMonitor.cohort == cohort, DetectorState.key == signal.key,
        DetectorState.anomalous.is_(True))).scalar_one()
    session.add(Alert(tenant_id=gateway.tenant_id, gateway_id=None, kind=kind,
                      detail=f"cohort {cohort}: {metrics.describe(signal.key)} moved on "
                             f"{shifted} gateways at once (a rollout, a busy hour, an "
                             "outage?): judged against the cohort, not alerted one by one",
                      at=at, severity="low", status="open", app=signal.app, source="cohort",
                      evidence={**evidence, "gateways": shifted}, updated_at=at))
    return 1


def endpoints(session: Session, gateway: Gateway, monitor: GatewayMonitor,
               new: dict[str, list[tuple[str, str, str]]], at: dt.datetime,
               learning: bool) -> int:
    raised = 0
    size = session.execute(select(func.count()).select_from(GatewayMonitor).where(
        GatewayMonitor.cohort == monitor.cohort,
        GatewayMonitor.gateway_id != gateway.id)).scalar_one()
    for kind, found in new.items():
        if not found:
            continue
        values = [value for value, _, _ in found]
        seen = dict(session.execute(
            select(Endpoint.value, func.count(distinct(Endpoint.gateway_id)))
            .join(GatewayMonitor, GatewayMonitor.gateway_id == Endpoint.gateway_id)
            .where(GatewayMonitor.cohort == monitor.cohort, Endpoint.kind == kind,
                   Endpoint.value.in_(values), Endpoint.gateway_id != gateway.id)
            .group_by(Endpoint.value)).tuples().all())
        for value in new_and_rare(values, set(), seen, size, learning):
            app, process = next((a, p) for v, a, p in found if v == value)
            who = f" (app {app}" + (f", {process})" if process else ")") if app else (
                f" ({process})" if process else "")
            made = alerts.raise_alert(
                session, gateway, f"new-{kind}",
                f"{gateway.serial}: {ENDPOINT_TITLES[kind]} {value}{who}, seen on "
                f"{seen.get(value, 0)} of the {size} other gateways of its cohort", at,
                severity="high" if kind == "listen" else "medium", app=app, source="set",
                evidence={"kind": kind, "value": value, "process": process,
                          "cohort": monitor.cohort, "cohort_size": size,
                          "seen_by": seen.get(value, 0)})
            raised += made is not None
    return raised


def _rules(session: Session, gateway: Gateway, values: dict[str, float], at: dt.datetime,
           states: dict[str, DetectorState]) -> int:
    if gateway.tenant_id is None:
        return 0
    raised = 0
    for row in session.execute(select(AlertRule).where(
            AlertRule.tenant_id == gateway.tenant_id)).scalars():
        rule = Rule(row.name, row.metric, row.app, row.op, row.threshold, row.duration)
        for key, value in values.items():
            app, metric = metrics.split(key)
            if metric != rule.metric or not (rule.app == app or (rule.app == "*" and app)):
                continue
            state_key = f"rule:{row.id}:{key}"[:120]
            state = states.get(state_key)
            clock = RuleClock.from_dict(dict(state.state)) if state else RuleClock()
            fired = clock.observe(rule, value, at.timestamp())
            if state is None:
                state = DetectorState(gateway_id=gateway.id, key=state_key, state={},
                                      anomalous=False)
                session.add(state)
                states[state_key] = state
            state.state, state.anomalous, state.updated_at = clock.to_dict(), clock.fired, at
            if fired:
                made = alerts.raise_alert(
                    session, gateway, f"rule.{row.name}"[:64],
                    f"{gateway.serial}: rule {row.name}: {rule.describe()} "
                    f"(now {value:.4g})", at, severity=row.severity, app=app, source="rule",
                    evidence={"rule": row.name, "metric": key, "value": value})
                raised += made is not None
    return raised
