"""Dashboard pages: sign-in with an API token, fleet overview, a gateway (with its apps
and security events), alerts, audit, OS updates (releases per channel, rollouts stage by
stage, pause/resume/abort); the Security page is in :mod:`.security`.

The session cookie holds the operator's API token (HttpOnly, Secure,
SameSite=Strict): the pages authenticate and authorize through the same
services and the same ``Action`` checks as the API.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from edgeward.errors import (
    AuthenticationError,
    InputError,
    NotFound,
    PermissionDenied,
    StateError,
)
from edgeward.server.api.models import Serial
from edgeward.server.app_errors import status_of
from edgeward.server.services import (
    alerts,
    appstatus,
    audit,
    findings,
    registry,
    releases,
    remediation,
    rollouts,
    security,
    tokens,
    updates,
)
from edgeward.server.services.authz import Action, Principal, authorize
from edgeward.server.state import state_of
from edgeward.server.web import charts, health

COOKIE = "ew_session"
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make form posts send Origin: null
    "cache-control": "no-store",
}
ORDER = ("attested", "failed", "stale", "unknown")

router = APIRouter(include_in_schema=False)
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status,
                        headers=HEADERS)


def _render(request: Request, action: Action, name: str, title: str,
            build: Callable[[Session, Principal, dt.datetime], dict[str, Any]]) -> Response:
    """Authenticate by cookie, authorize ``action``, build the page in one transaction."""
    state = state_of(request)
    who: Principal | None = None
    try:
        with state.db.transaction() as session:
            who = tokens.authenticate(session, request.cookies.get(COOKIE), state.clock())
            authorize(who, action)
            context = build(session, who, state.clock())
    except AuthenticationError:
        return RedirectResponse("/login", status_code=303, headers=HEADERS)
    except (PermissionDenied, NotFound) as e:
        return page("base.html", status=status_of(e), title=e.message, who=who)
    return page(name, title=title, who=who, **context)


@router.get("/login")
def login_form() -> HTMLResponse:
    return page("login.html", title="Sign in", who=None, error=None)


def _same_origin(request: Request) -> bool:
    """A browser form from this very site (login CSRF is refused)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


@router.post("/login")
async def login(request: Request) -> Response:
    if not _same_origin(request):
        return page("login.html", status=403, title="Sign in", who=None,
                    error="refused: the sign-in form was posted from another site")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0].strip()
    state = state_of(request)
    try:
        with state.db.transaction() as session:
            who = tokens.authenticate(session, token, state.clock())
            audit.record(session, who.tenant_id, who.actor, "session.login", "dashboard",
                         state.clock())
    except AuthenticationError as e:
        return page("login.html", status=401, title="Sign in", who=None, error=e.message)
    response = RedirectResponse("/", status_code=303, headers=HEADERS)
    response.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="strict",
                        max_age=8 * 3600)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    if not _same_origin(request):
        return RedirectResponse("/", status_code=303, headers=HEADERS)
    response = RedirectResponse("/login", status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, httponly=True, secure=True, samesite="strict")
    return response


@router.get("/")
def fleet(request: Request) -> Response:
    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        rows = registry.visible(session, who)
        gateways = [registry.describe(g, now) for g in rows]
        counted = Counter(g["attestation"] for g in gateways)
        return {"gateways": gateways, "health": health.summary(session, rows, now),
                "counts": [(s, counted[s]) for s in ORDER if counted[s] or s == "attested"]}

    return _render(request, Action.GATEWAY_LIST, "fleet.html", "Fleet", build)


@router.get("/gateways/{serial}")
def gateway(serial: Serial, request: Request,
            hours: Annotated[int, Query(ge=1, le=168)] = 6) -> Response:
    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        found = registry.find(session, who, serial, Action.GATEWAY_READ)
        events = [e for e in audit.events(session, who, 1000)
                  if e.target == serial or e.target.startswith(serial + "/")]  # its apps
        return {"gateway": registry.describe(found, now),
                "events": [{"at": registry.iso(e.at), "actor": e.actor, "action": e.action}
                           for e in events],
                "update": updates.current(session, found),
                "update_events": updates.events(session, found, 10),
                "apps": appstatus.of_gateway(session, found),
                "security_events": security.listed(session, who, gateway=serial, limit=20),
                "dropped": security.dropped(session, who, found)["total"],
                "findings": findings.listed(session, who, now, gateway=serial),
                "quarantined_since": remediation.quarantined_since(session, found),
                "actions": remediation.actions_of(session, found, 10),
                "charts": charts.for_gateway(session, found, now,
                                             dt.timedelta(hours=hours)), "hours": hours}

    return _render(request, Action.GATEWAY_READ, "gateway.html", f"Gateway {serial}", build)


@router.get("/audit")
def audit_page(request: Request) -> Response:
    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        return {"events": [{"at": registry.iso(e.at), "actor": e.actor, "action": e.action,
                            "target": e.target} for e in audit.events(session, who, 500)]}

    return _render(request, Action.AUDIT_READ, "audit.html", "Audit log", build)


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    """Alerts (all, or open only) with their forms; the forms post to :mod:`.alerts`."""
    view = "open" if request.query_params.get("status") == "open" else "all"

    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        found = alerts.visible(session, who, 200, status="open" if view == "open" else None)
        ordered = remediation.for_alerts(session, who, [a.id for a, _ in found])
        return {"alerts": [{**alerts.describe(a, serial), "actions": [
                    f"{o.action}{' ' + o.app if o.app else ''}: {o.status}"
                    for o in ordered.get(a.id, [])]} for a, serial in found],
                "view": view, "manage": Action.ALERT_MANAGE in who.allowed(),
                "remediate": Action.GATEWAY_REMEDIATE in who.allowed()}

    return _render(request, Action.ALERT_READ, "alerts.html", "Alerts", build)


@router.get("/updates")
def updates_page(request: Request) -> Response:
    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        published = [releases.describe(r) for r in releases.listed(session, who)]
        return {"channels": [(c, [r for r in published if r["channel"] == c])
                             for c in releases.CHANNELS],
                "rollouts": [rollouts.describe(snap, who)
                             for snap in rollouts.visible(session, who, now, limit=20)],
                "manage": Action.ROLLOUT_MANAGE in who.allowed()}

    return _render(request, Action.RELEASE_READ, "updates.html", "Updates", build)


def form_action(request: Request, work: Callable[[Session, Principal, dt.datetime], object],
                back: str) -> Response:
    """A dashboard button: a same-site form post, done as the session cookie's principal
    in one transaction, then back to ``back`` (a refusal is a page saying why)."""
    if not _same_origin(request):
        return page("base.html", status=403, who=None,
                    title="refused: the form was posted from another site")
    state = state_of(request)
    who: Principal | None = None
    try:
        with state.db.transaction() as session:
            who = tokens.authenticate(session, request.cookies.get(COOKIE), state.clock())
            work(session, who, state.clock())
    except AuthenticationError:
        return RedirectResponse("/login", status_code=303, headers=HEADERS)
    except (PermissionDenied, NotFound, StateError, InputError) as e:
        return page("base.html", status=status_of(e), title=e.message, who=who)
    return RedirectResponse(back, status_code=303, headers=HEADERS)


@router.post("/rollouts/{rollout_id}/{action}")
def rollout_action(rollout_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
                   action: Literal["pause", "resume", "abort"], request: Request) -> Response:
    """A pause, resume or abort button: same-site form, the session cookie's principal."""
    return form_action(request, lambda session, who, now: rollouts.act(
        session, who, rollout_id, action, now), f"/updates#rollout-{rollout_id}")
