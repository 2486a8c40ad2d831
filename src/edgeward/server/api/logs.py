"""Central logs: gateways ship their apps' and agent's lines (mutual TLS), operators
search them or read those around an alert (tokens)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.routing import APIRouter
from pydantic import Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from edgeward.errors import InputError, Throttled
from edgeward.server.api import deps
from edgeward.server.api.models import Name, Serial
from edgeward.server.api.security import AppName, Epoch, Since
from edgeward.server.api.updates import Body
from edgeward.server.services import logstore, registry
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

MAX_LINES = 1000
MAX_TEXT = 2000
MAX_QUERY = 200
MAX_LOGS_BODY = 4 * 1024 * 1024  # the agent sends at most 512 KiB of lines at once

BatchId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT,
                                        pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
Level = Literal["debug", "info", "warning", "error"]


class LogLineIn(Body):
    time: Epoch
    app: AppName
    source: Literal["app", "agent"]
    level: Level
    text: Text


class LogBatch(Body):
    batch: BatchId
    lines: list[LogLineIn] = Field(max_length=MAX_LINES)


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.post("/v1/gateway/logs", tags=["gateway"])
def gateway_logs(body: LogBatch, request: Request) -> dict[str, Any]:
    """Store a batch of log lines once (a batch sent again stores nothing), if the
    gateway's quota takes it whole; else 429 with Retry-After, and nothing is stored."""
    state = state_of(request)
    lines = [logstore.Line(line.time, line.app, line.source, line.level, line.text)
             for line in body.lines]
    for attempt in (1, 2):
        try:
            with state.db.transaction() as session:
                _, known = deps.gateway(session, request)
                gateway = registry.require_enrolled(known)
                taken = logstore.ingest(session, gateway, body.batch, lines, state.clock(),
                                        state.log_quota)
                serial = gateway.serial
        except IntegrityError:  # the same batch twice at once: the other stored it
            if attempt == 2:
                raise
            continue
        if taken.retry_after is not None:  # after the commit: a flood alert is kept
            quota = state.log_quota
            raise Throttled(f"{serial} is over its log quota ({quota.burst} lines at once, "
                            f"then {quota.rate:g} a second): send this batch again later",
                            taken.retry_after)
        return {"stored": taken.stored, "duplicate": taken.duplicate}
    raise AssertionError("unreachable")


# -- operators (tokens) -------------------------------------------------------------------


@router.get("/v1/logs", tags=["logs"])
def list_logs(request: Request, gateway: Annotated[Serial | None, Query()] = None,
              app: Annotated[Name | None, Query()] = None, since: Since = None,
              until: Since = None,
              q: Annotated[str | None, Query(max_length=MAX_QUERY,
                                             pattern=r"^[^\x00-\x1f\x7f]*$",
                                             description="words, all of them; word* "
                                                         "for a prefix")] = None,
              limit: Annotated[int, Query(ge=1, le=MAX_LINES)] = 200,
              before: Annotated[int | None, Query(ge=1, le=2**62,
                                                  description="page on: lines older "
                                                              "than this line's id")] = None,
              alert: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                                 description="the lines around this "
                                                             "alert")] = None,
              ) -> dict[str, Any]:
    """The tenant's log lines, newest first; with ``alert``, that alert and the lines
    of its gateway (and app) around it, oldest first."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        if alert is not None:
            if any(v is not None for v in (gateway, app, since, until, q, before)):
                raise InputError("alert takes no other filter but limit")
            return logstore.around(session, who, alert, limit=limit)
        now = state.clock()
        lines = logstore.search(
            session, who, gateway=gateway, app=app,
            since=logstore.parse_time(since, "since", now),
            until=logstore.parse_time(until, "until", now), text=q, limit=limit,
            before_id=before)
        return {"alert": None, "lines": lines}
