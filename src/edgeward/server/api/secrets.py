"""Secrets: tenant admins set and revoke them, viewers list them (never a value); a
gateway whose last attestation is good receives its own, sealed to its certificate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Query, Request
from pydantic import Field, field_validator
from sqlalchemy.orm import Session

from edgeward.errors import PermissionDenied
from edgeward.server.api import deps
from edgeward.server.api.models import Name
from edgeward.server.api.updates import Body
from edgeward.server.services import registry, secretstore
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()


def small(value: str) -> str:
    """At most 64 KiB as UTF-8 (the message never quotes the value)."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError as e:  # a lone surrogate from JSON's \\ud800
        raise ValueError("the value is not valid Unicode text") from e
    if size > secretstore.MAX_VALUE:
        raise ValueError(f"the value is {size} bytes as UTF-8: at most "
                         f"{secretstore.MAX_VALUE}")
    return value


class Hiding(Body):
    """A body that carries a secret: its repr (a traceback's, a log's) hides ``HIDDEN``."""

    HIDDEN: ClassVar[frozenset[str]] = frozenset({"value"})

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, "<hidden>" if name in self.HIDDEN else value


class SecretValue(Hiding):
    value: str = Field(min_length=1, max_length=secretstore.MAX_VALUE)
    group: Name | None = None

    _small = field_validator("value")(small)


class SecretInfo(Body):
    app: str
    name: str
    group: str | None
    version: int


class SecretListed(SecretInfo):
    updated_at: str | None


class Revoked(SecretInfo):
    revoked: bool


class Sealed(Body):
    app: str
    name: str
    version: int
    sealed: str = Field(description="HPKE box (base64) sealed to the gateway's certificate "
                                    "key, info secretbox.secret_info(serial, app, name, "
                                    "version)")


class Delivery(Body):
    secrets: list[Sealed]


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.get("/v1/gateway/secrets", tags=["gateway"])
def gateway_secrets(request: Request) -> Delivery:
    """The gateway's current secrets (a group's over the tenant-wide one), each sealed to
    its certificate's key; 403 unless its last attestation is good."""
    state = state_of(request)
    master = state.master()
    with state.db.transaction() as session:
        cert, known = deps.gateway(session, request)
        gateway = registry.require_enrolled(known)
        refused = secretstore.refusal(session, gateway, state.clock())
        if refused is None:
            return Delivery.model_validate({"secrets": secretstore.deliver(
                session, master, gateway, cert, state.clock())})
    raise PermissionDenied(refused)  # after the refusal's record is committed


# -- operators (tokens) -------------------------------------------------------------------


@router.put("/v1/secrets/{app}/{name}", tags=["secrets"])
def put_secret(app: Name, name: Name, body: SecretValue, request: Request) -> SecretInfo:
    """Set a secret of the tenant (admin): a new version; ``group`` for one group only."""
    state = state_of(request)
    master = state.master()

    def work(session: Session) -> SecretInfo:
        who = deps.operator(session, request, Action.SECRET_MANAGE)
        row = secretstore.put(session, who, master, app, name, body.group,
                              body.value.encode(), state.clock())
        return SecretInfo(app=row.app, name=row.name, group=row.scope or None,
                          version=row.version)

    return deps.once_more(request, work)


@router.get("/v1/secrets", tags=["secrets"])
def list_secrets(request: Request, app: Annotated[Name | None, Query()] = None
                 ) -> list[SecretListed]:
    """The tenant's current secrets: app, name, group, version, updated_at; no value."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.SECRET_READ)
        return [SecretListed(**s) for s in secretstore.listed(session, who, app)]


@router.delete("/v1/secrets/{app}/{name}", tags=["secrets"])
def delete_secret(app: Name, name: Name, request: Request,
                  group: Annotated[Name | None, Query()] = None) -> Revoked:
    """Revoke a secret (admin): its value is erased and no gateway receives it any more."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.SECRET_MANAGE)
        row = secretstore.revoke(session, who, app, name, group, state.clock())
        return Revoked(app=row.app, name=row.name, group=row.scope or None,
                       version=row.version, revoked=True)
