"""What gateways hand the server to keep (mutual TLS): their data-volume recovery key
and the per-device credentials they made; what tenant admins may read back (tokens),
every read and every refused attempt audited.

A gateway need only be enrolled (and not revoked) to escrow its recovery key: the agent
hands it in as soon as it can, and a replaced one is audited. A credential is taken only
from a gateway whose last attestation is good, as secrets are given only to one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from pydantic import Field, field_validator
from sqlalchemy.orm import Session

from edgeward.errors import NotFound, PermissionDenied
from edgeward.server.api import deps
from edgeward.server.api.models import Name, Serial
from edgeward.server.api.secrets import Hiding, small
from edgeward.server.api.updates import Body
from edgeward.server.services import credentials, escrow, registry, secretstore
from edgeward.server.services.authz import Action, Principal
from edgeward.server.state import state_of

router = APIRouter()
T = TypeVar("T")


class RecoveryKeyReport(Hiding):
    HIDDEN = frozenset({"recovery_key"})

    recovery_key: str = Field(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f]+$")


class CredentialReport(Hiding):
    app: Name
    name: Name
    value: str = Field(min_length=1, max_length=secretstore.MAX_VALUE)

    _small = field_validator("value")(small)


class Escrowed(Body):
    escrowed: bool


class CredentialStored(Body):
    app: str
    name: str
    outcome: credentials.Outcome


class RecoveryKey(Hiding):
    HIDDEN = frozenset({"recovery_key"})

    gateway: str
    recovery_key: str
    escrowed_at: str | None


class CredentialListed(Body):
    app: str
    name: str
    reported_at: str | None


class Credential(Hiding, CredentialListed):
    gateway: str
    value: str


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.post("/v1/gateway/recovery-key", tags=["gateway"])
def gateway_recovery_key(body: RecoveryKeyReport, request: Request) -> Escrowed:
    """Escrow the gateway's data-volume recovery key (the same again changes nothing)."""
    state = state_of(request)
    master = state.master()

    def work(session: Session) -> Escrowed:
        _, known = deps.gateway(session, request)
        escrow.escrow(session, master, registry.require_enrolled(known),
                      body.recovery_key.encode(), state.clock())
        return Escrowed(escrowed=True)

    return deps.once_more(request, work)


@router.post("/v1/gateway/credentials", tags=["gateway"])
def gateway_credential(body: CredentialReport, request: Request) -> CredentialStored:
    """Keep a credential the gateway made for one of its apps (its own, never shared);
    403 unless its last attestation is good (an admin may hand it to a customer's
    service: it must come from a verified gateway)."""
    state = state_of(request)
    master = state.master()

    def work(session: Session) -> CredentialStored | str:
        _, known = deps.gateway(session, request)
        gateway = registry.require_enrolled(known)
        refused = secretstore.refusal(session, gateway, state.clock(), "a credential report",
                                      "gateway.credential-refused")
        if refused is not None:
            return refused  # recorded: committed with this transaction
        outcome = credentials.report(session, master, gateway, body.app, body.name,
                                     body.value.encode(), state.clock())
        return CredentialStored(app=body.app, name=body.name, outcome=outcome)

    answer = deps.once_more(request, work)
    if isinstance(answer, str):
        raise PermissionDenied(answer)
    return answer


# -- operators (tokens) -------------------------------------------------------------------


def _audited(request: Request, action: Action, refused: str, serial: str, target: str,
             work: Callable[[Session, Principal], T]) -> T:
    """``work`` for the operator allowed ``action``; a refusal (not allowed, not found)
    is recorded in a transaction of its own before it is answered."""
    state = state_of(request)
    who: Principal | None = None
    try:
        with state.db.transaction() as session:
            who = deps.operator(session, request, action)
            return work(session, who)
    except (PermissionDenied, NotFound) as e:
        if who is None:  # no valid token: nobody to record
            raise
        with state.db.transaction() as session:
            escrow.record_refusal(session, who, refused, serial, target, e.message,
                                  state.clock())
        raise


@router.get("/v1/gateways/{serial}/recovery-key", tags=["secrets"])
def fetch_recovery_key(serial: Serial, request: Request) -> RecoveryKey:
    """The gateway's escrowed recovery key: tenant admins of its tenant (the platform
    admin for an unassigned gateway) only; audited, refusals too."""
    state = state_of(request)
    master = state.master()

    def work(session: Session, who: Principal) -> RecoveryKey:
        return RecoveryKey(**escrow.fetch(session, master, who, serial, state.clock()))

    return _audited(request, Action.GATEWAY_READ, "recovery-key.fetch-refused", serial,
                    serial, work)


@router.get("/v1/gateways/{serial}/credentials", tags=["secrets"])
def list_credentials(serial: Serial, request: Request) -> list[CredentialListed]:
    """The credentials the gateway reported (app, name, when): no value."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.SECRET_READ)
        return [CredentialListed(**c) for c in credentials.listed(session, who, serial)]


@router.get("/v1/gateways/{serial}/credentials/{app}/{name}", tags=["secrets"])
def reveal_credential(serial: Serial, app: Name, name: Name, request: Request) -> Credential:
    """One credential's value: tenant admins only; audited, refusals too."""
    state = state_of(request)
    master = state.master()

    def work(session: Session, who: Principal) -> Credential:
        return Credential(**credentials.reveal(session, master, who, serial, app, name,
                                               state.clock()))

    return _audited(request, Action.GATEWAY_READ, "credential.reveal-refused", serial,
                    f"{serial}/{app}/{name}", work)
