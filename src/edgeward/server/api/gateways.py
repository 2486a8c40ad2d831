"""What gateways call, authenticated by their factory certificate (mutual TLS)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.exc import IntegrityError

from edgeward.errors import Conflict
from edgeward.server.api import deps
from edgeward.server.api.models import EnrolRequest, HeartbeatRequest, QuoteRequest
from edgeward.server.services import attestation, registry, secretstore
from edgeward.server.state import state_of

router = APIRouter(prefix="/v1/gateway", tags=["gateway"])


@router.post("/enrol")
def enrol(body: EnrolRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    for attempt in (1, 2):
        try:
            with state.db.transaction() as session:
                cert, known = deps.gateway(session, request)
                gateway = registry.enrol(session, state.trust, cert, known, body.record,
                                         body.station_certificate, state.clock())
                return registry.describe(gateway, state.clock())
        except IntegrityError:
            if attempt == 2:  # a concurrent enrolment won twice: let its answer stand
                raise
            continue  # it did win once: read what it stored and answer from that
        except Conflict:
            with state.db.transaction() as session:  # kept, though the enrolment is refused
                cert, _ = deps.gateway(session, request)
                registry.record_conflict(session, cert, state.clock())
            raise
    raise AssertionError("unreachable")


@router.post("/nonce")
def nonce(request: Request) -> dict[str, str]:
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        return {"nonce": attestation.issue_nonce(session, registry.require_enrolled(known),
                                                 state.clock())}


@router.post("/quote")
def quote(body: QuoteRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        cert, known = deps.gateway(session, request)
        gateway = registry.require_enrolled(known)
        verdict = attestation.submit(session, state.trust, state.known_good, gateway, cert,
                                     body.nonce, body.quote.encode(), state.clock())
        return {"verdict": verdict, "reason": gateway.attestation_detail or None}


@router.post("/heartbeat")
def heartbeat(body: HeartbeatRequest, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        gateway = registry.require_enrolled(known)
        registry.heartbeat(session, gateway, body.slot,
                           {str(k): v for k, v in body.versions.items()}, body.boot_id,
                           state.clock())
        # "secrets": changes when the gateway's secrets do (the agent then fetches them)
        return {**registry.describe(gateway, state.clock()),
                "secrets": secretstore.stamp(session, gateway)}
