"""Telemetry: gateways report metrics, listening ports and remote hosts (mutual TLS);
operators read a gateway's series (tokens)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from edgeward.server.api import deps
from edgeward.server.api.models import Serial
from edgeward.server.api.security import MAX_EPOCH, AppName, Since
from edgeward.server.api.updates import Body
from edgeward.server.services import metricstore, registry, security, telemetry
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

MAX_REPORTS = 60
BatchId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Value = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
Label = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
Host = Annotated[str, StringConstraints(min_length=1, max_length=160,
                                        pattern=r"^[0-9A-Za-z.:%_\[\]-]+$")]


class ListenerIn(Body):
    proto: Annotated[str, StringConstraints(pattern=r"^(tcp|udp)6?$")]
    address: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9A-Fa-f.:%*]*$")]
    port: int = Field(ge=0, le=65535)
    process: Label = ""
    app: AppName = ""


class RemoteIn(Body):
    host: Host
    port: int = Field(ge=0, le=65535)
    process: Label = ""
    app: AppName = ""


class ReportIn(Body):
    at: float = Field(ge=0, le=MAX_EPOCH, allow_inf_nan=False)
    interval: float = Field(gt=0, le=86400, allow_inf_nan=False)
    boot_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{0,32}$")] = ""
    metrics: dict[MetricName, Value] = Field(max_length=32)
    apps: dict[AppName, dict[MetricName, Value]] = Field(default_factory=dict, max_length=64)
    listening: list[ListenerIn] = Field(default_factory=list, max_length=256)
    remotes: list[RemoteIn] = Field(default_factory=list, max_length=512)


class TelemetryBatch(Body):
    batch: BatchId
    reports: list[ReportIn] = Field(min_length=1, max_length=MAX_REPORTS)


def _report(r: ReportIn) -> telemetry.Report:
    return telemetry.Report(
        r.at, r.interval, r.boot_id, dict(r.metrics),
        {app: dict(values) for app, values in r.apps.items() if app},
        tuple(telemetry.Listener(x.proto, x.address, x.port, x.process, x.app)
              for x in r.listening),
        tuple(telemetry.Remote(x.host, x.port, x.process, x.app) for x in r.remotes))


@router.post("/v1/gateway/telemetry", tags=["gateway"])
def gateway_telemetry(body: TelemetryBatch, request: Request) -> dict[str, Any]:
    """Store and judge the reports (a batch sent again stores nothing)."""
    state = state_of(request)
    reports = [_report(r) for r in body.reports]
    try:
        with state.db.transaction() as session:
            _, known = deps.gateway(session, request)
            return telemetry.ingest(session, state.cohorts, registry.require_enrolled(known),
                                    body.batch, reports, state.clock())
    except IntegrityError:  # the same batch twice at once: the other one stored it
        return {"stored": 0, "duplicate": True}


@router.get("/v1/gateways/{serial}/metrics", tags=["monitoring"])
def gateway_metrics(request: Request, serial: Annotated[Serial, PathParam()],
                    metric: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$")] =
                    "cpu_percent",
                    app: Annotated[AppName, Query()] = "", since: Since = None,
                    points: Annotated[int, Query(ge=2, le=2000)] = 240) -> dict[str, Any]:
    """One metric of a gateway (or of one of its apps) over time, at most ``points``
    buckets (mean, low, high each), from raw points or their roll-ups."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        now = state.clock()
        return metricstore.series(session, who, serial, metric, app,
                                  security.parse_since(since, now), now, points)
