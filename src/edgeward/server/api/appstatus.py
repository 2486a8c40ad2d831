"""Apps on gateways: status and learnt profiles (gateways, mutual TLS); status, modes
and profiles (operators, tokens)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, StringConstraints, model_validator

from edgeward.server.api import deps
from edgeward.server.api.models import Name, Serial
from edgeward.server.api.security import Epoch, Line
from edgeward.server.api.updates import Body, Version
from edgeward.server.services import appprofiles, appstatus, registry
from edgeward.server.services.authz import Action
from edgeward.server.state import state_of

router = APIRouter()

Plug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z-]{1,23}(:[A-Za-z0-9._-]{1,64})?$")]
Egress = Annotated[str, StringConstraints(max_length=300,
                                          pattern=r"^[A-Za-z0-9.:/*\[\]_-]{1,290}:[0-9]{1,5}$")]
Mode = Literal["enforce", "complain"]
AppState = Literal["running", "stopped", "starting", "backoff", "crash-loop", "failed",
                   "installed"]


class AppStatus(Body):
    name: Name
    version: Version
    publisher: Name
    state: AppState
    mode: Mode = "enforce"
    granted: list[Plug] = Field(default_factory=list, max_length=32)
    withheld: list[Plug] = Field(default_factory=list, max_length=32)
    restarts: int = Field(default=0, ge=0, le=2**31 - 1)
    since: Epoch | None = None


class AppsReport(Body):
    apps: list[AppStatus] = Field(max_length=128)

    @model_validator(mode="after")
    def once_each(self) -> AppsReport:
        names = [a.name for a in self.apps]
        if len(names) != len(set(names)):
            raise ValueError("each app once")
        return self


class Denied(Body):
    what: Line
    count: int = Field(default=1, ge=1, le=2**31 - 1)


class ProfileReport(Body):
    app: Name
    version: Version
    interfaces: list[Plug] = Field(default_factory=list, max_length=32)
    egress: list[Egress] = Field(default_factory=list, max_length=1024)
    denied: list[Denied] = Field(default_factory=list, max_length=256)
    observed_from: Epoch
    observed_to: Epoch

    @model_validator(mode="after")
    def in_order(self) -> ProfileReport:
        if self.observed_to < self.observed_from:
            raise ValueError("observed_to is before observed_from")
        return self


class ModeRequest(Body):
    mode: Mode
    test_gateway: bool = False


# -- gateways (mutual TLS) --------------------------------------------------------------


@router.post("/v1/gateway/apps", tags=["gateway"])
def gateway_apps(body: AppsReport, request: Request) -> dict[str, bool]:
    """All the gateway's apps: replaces what it reported before."""
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        appstatus.report(session, registry.require_enrolled(known),
                         [appstatus.Reported(**a.model_dump()) for a in body.apps],
                         state.clock())
        return {"ok": True}


@router.post("/v1/gateway/profiles", tags=["gateway"])
def gateway_profile(body: ProfileReport, request: Request) -> dict[str, bool]:
    """What complain mode learnt an app needs (replaces its profile from this gateway)."""
    state = state_of(request)
    with state.db.transaction() as session:
        _, known = deps.gateway(session, request)
        appprofiles.store(session, registry.require_enrolled(known),
                          appprofiles.Learnt(**body.model_dump()), state.clock())
        return {"ok": True}


# -- operators (tokens) -------------------------------------------------------------------


@router.get("/v1/gateways/{serial}/apps", tags=["apps"])
def list_gateway_apps(serial: Serial, request: Request) -> list[dict[str, Any]]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        return appstatus.listed(session, who, serial)


@router.put("/v1/gateways/{serial}/apps/{app}/mode", tags=["apps"])
def set_app_mode(serial: Serial, app: Name, body: ModeRequest, request: Request
                 ) -> dict[str, Any]:
    """Enforce, or complain (a test gateway only: ``"test_gateway": true``); audited."""
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.APP_MODE)
        return appstatus.set_mode(session, who, serial, app, body.mode, body.test_gateway,
                                  state.clock())


@router.get("/v1/gateways/{serial}/apps/{app}/profile", tags=["apps"])
def show_app_profile(serial: Serial, app: Name, request: Request) -> dict[str, Any]:
    state = state_of(request)
    with state.db.transaction() as session:
        who = deps.operator(session, request, Action.GATEWAY_READ)
        return appprofiles.shown(session, who, serial, app)
