"""What the running server holds: its database, trust anchors, known-good values, clock,
the rate limits of security events and log lines per gateway (token buckets), and the
master key that unwraps the envelope keys of secrets at rest (never shown in a repr or a
traceback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from edgeward.errors import NotAvailable
from edgeward.server.db.engine import Database
from edgeward.server.services.cohorts import Cohorts
from edgeward.server.services.hookreach import Network
from edgeward.server.services.logquota import LogQuota
from edgeward.server.services.registry import Trust
from edgeward.server.services.repository import ServerRepository
from edgeward.server.services.revocation import Revoked
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
    event_burst: int = 300  # events a gateway may send at once ...
    event_rate: float = 5.0  # ... and per second after that; the rest are dropped
    log_quota: LogQuota = field(default_factory=LogQuota)  # log lines per gateway
    master_key: bytes | None = field(default=None, repr=False)
    cohorts: Cohorts = field(default_factory=Cohorts)  # the cohorts' levels, in memory
    revoked: Revoked = field(default_factory=Revoked)  # revoked certificates, cached
    hook_networks: tuple[Network, ...] = ()  # where alert hooks may reach, besides the internet

    def master(self) -> bytes:
        if self.master_key is None:
            raise NotAvailable("this server was started without a master key: no secrets")
        return self.master_key


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.edgeward
    return state
