"""Who is asking: an operator's token, or a gateway's factory certificate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cryptography import x509
from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgeward.errors import AuthenticationError
from edgeward.server.db.models import Gateway
from edgeward.server.services import registry, revocation, tokens
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.state import state_of
from edgeward.server.tls import client_certificate

T = TypeVar("T")


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def missing_credentials(request: Request) -> str | None:
    """Why an API request cannot be served at all, judged before its body is read.

    A gateway route without a client certificate, or an operator route without a
    valid token, is refused here (the route then authorizes the principal found
    here for its action), so a caller without credentials learns nothing of the request
    schema (not even that its JSON does not parse). Runs in a worker thread.
    """
    path = request.url.path
    if path.startswith("/v1/gateway/"):
        cert_pem = client_certificate(request.scope)
        if cert_pem is None:
            return "this endpoint needs the gateway's factory certificate"
        state = state_of(request)
        fingerprint = revocation.fingerprint_of(cert_pem)

        def load() -> frozenset[str]:
            with state.db.transaction() as session:
                return revocation.revoked_fingerprints(session)

        if fingerprint and state.revoked.contains(load, fingerprint):
            with state.db.transaction() as session:  # the route refuses it: noted first
                revocation.sighted(session, cert_pem, state.clock())
    elif path.startswith("/v1/"):
        state = state_of(request)
        try:
            with state.db.transaction() as session:
                request.state.principal = tokens.authenticate(session, bearer(request),
                                                              state.clock())
        except AuthenticationError as e:
            return e.message
    return None


def _principal(session: Session, request: Request) -> Principal:
    """The principal the middleware authenticated for this request (else authenticate)."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    return tokens.authenticate(session, bearer(request), state_of(request).clock())


def operator(session: Session, request: Request, action: Action) -> Principal:
    """The operator behind the request's token, allowed ``action`` (or refused)."""
    principal = _principal(session, request)
    authorize(principal, action)
    return principal


def operator_in(session: Session, request: Request, tenant: str | None, own: Action
                ) -> Principal:
    """As :func:`operator`, for a route that may name a tenant: ``own`` for one's own,
    tenant management for another."""
    principal = _principal(session, request)
    authorize(principal, own if tenant in (None, principal.tenant) else Action.TENANT_MANAGE)
    return principal


def gateway(session: Session, request: Request
            ) -> tuple[x509.Certificate, Gateway | None]:
    state = state_of(request)
    return registry.identify(session, state.trust, client_certificate(request.scope),
                             state.clock())



def once_more(request: Request, work: Callable[[Session], T]) -> T:
    """``work`` in one transaction; run again (once) if a concurrent request made a row
    with the same unique name first (the second run finds it)."""
    db = state_of(request).db
    try:
        with db.transaction() as session:
            return work(session)
    except IntegrityError:
        with db.transaction() as session:
            return work(session)
