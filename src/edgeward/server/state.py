"""What the running server holds: its database, trust anchors, known-good values, clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from edgeward.server.db.engine import Database
from edgeward.server.services.registry import Trust
from edgeward.server.services.repository import ServerRepository
from edgeward.trust.quote import KnownGood


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ServerState:
    db: Database
    trust: Trust
    known_good: KnownGood
    repository: ServerRepository | None = None
    clock: Callable[[], dt.datetime] = field(default=_utcnow)


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.edgeward
    return state
