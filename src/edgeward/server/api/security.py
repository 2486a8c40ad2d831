"""Security events: gateways report them (mutual TLS), operators read them (tokens)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field, StringConstraints, field_validator
from sqlalchemy.exc import IntegrityError

from edgeward.server.api import deps
from edgeward.server.api.models import Name, Serial
from edgeward.server.api.updates import Body
from edgeward.server.services import eventrules, intake, registry, security, telemetry
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

MAX_EVENTS = 500
MAX_WHAT = 300
MAX_DETAIL = 2048  # bytes of the detail object as compact UTF-8 JSON
MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z
# the largest batch that can be valid, with room for JSON escapes and whitespace
MAX_EVENTS_BODY = MAX_EVENTS * (MAX_DETAIL + 6 * MAX_WHAT + 1024)

Kind = Literal["syscall", "file", "network", "signal", "dbus", "limit", "crash-loop",
               "suppressed", "sandbox", "login", "listen", "remote", "exec", "boot", "update",
               "audit"]
AppName = Annotated[str, StringConstraints(pattern=r"^([a-z0-9][a-z0-9._-]{0,63})?$")]
Line = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WHAT,
                                        pattern=r"^[^\x00-\x1f\x7f]+$")]
Epoch = Annotated[float, Field(ge=0, le=MAX_EPOCH, allow_inf_nan=False)]
Since = Annotated[str | None, Query(max_length=40, pattern=r"^[0-9A-Za-z:.+ -]*$",
                                    description="epoch seconds or ISO 8601")]


class Event(Body):
    time: Epoch
    app: AppName = ""
    kind: Kind
    what: Line
    detail: dict[str, Any] = Field(default_factory=dict)
    count: int = Field(default=1, ge=1, le=2**31 - 1)

    @field_validator("detail")
    @classmethod
    def small(cls, detail: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(detail, ensure_ascii=False, separators=(",", ":"),
                                  allow_nan=False).encode())
        except (ValueError, UnicodeEncodeError, RecursionError) as e:
            raise ValueError("detail must be plain JSON in UTF-8") from e
        if size > MAX_DETAIL:
            raise ValueError(f"detail is {size} bytes as JSON: at most {MAX_DETAIL}")
        return detail


class EventBatch(Body):
    batch: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    events: list[Event] = Field(max_length=MAX_EVENTS)


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.post("/v1/gateway/events", tags=["gateway"])
def gateway_events(body: EventBatch, request: Request) -> dict[str, Any]:
    """Store the events the gateway's rate limit lets through; say how many were not."""
    state = state_of(request)
    incoming = [intake.Incoming(e.time, e.kind, e.what, e.app, e.detail, e.count)
                for e in body.events]
    for attempt in (1, 2):
        try:
            with state.db.transaction() as session:
                _, known = deps.gateway(session, request)
                gateway = registry.require_enrolled(known)
                if body.batch and not telemetry.received(session, gateway, body.batch,
                                                         "events", state.clock()):
                    return {"accepted": 0, "dropped": 0, "duplicate": True}
                accepted, dropped = intake.ingest(
                    session, gateway, incoming, state.clock(), state.event_burst,
                    state.event_rate)
                eventrules.judge(session, gateway, incoming[:accepted], state.clock())
                return {"accepted": accepted, "dropped": dropped}
        except IntegrityError:  # two first batches at once: the other made the bucket
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# -- operators (tokens) -------------------------------------------------------------------


@router.get("/v1/events", tags=["security"])
def list_events(request: Request, gateway: Annotated[Serial | None, Query()] = None,
                app: Annotated[Name | None, Query()] = None,
                kind: Annotated[Kind | None, Query()] = None, since: Since = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The tenant's latest security events, newest first."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        return security.listed(session, who, gateway=gateway, app=app, kind=kind,
                               since=security.parse_since(since, state.clock()), limit=limit)


@router.get("/v1/events/summary", tags=["security"])
def events_summary(request: Request, since: Since = None,
                   bucket: Annotated[int, Query(ge=10, le=86400)] = 60) -> dict[str, Any]:
    """Events per time bucket and kind (sum of counts), and how many were dropped."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        now = state.clock()
        return security.summary(session, who, now, security.parse_since(since, now), bucket)
