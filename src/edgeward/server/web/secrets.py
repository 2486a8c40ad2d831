"""The Secrets page: the tenant's secrets (app, name, group, version, updated; never a
value) and, for its admins, a form to set one and a button to revoke each. The forms
are same-site posts authenticated by the session cookie, through the same service and
``Action`` checks as the API (and audited by it)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from edgeward.errors import AuthenticationError, Error
from edgeward.server.app_errors import status_of
from edgeward.server.services import groups, secretstore, tokens
from edgeward.server.services.authz import Action, Principal
from edgeward.server.state import state_of
from edgeward.server.web.routes import COOKIE, HEADERS, _render, _same_origin, page

router = APIRouter(include_in_schema=False)


def _context(session: Session, who: Principal) -> dict[str, Any]:
    _, found = groups.visible(session, who)
    return {"secrets": secretstore.listed(session, who),
            "groups": [g.name for g, _ in found],
            "manage": Action.SECRET_MANAGE in who.allowed()}


@router.get("/secrets")
def secrets_page(request: Request) -> Response:
    def build(session: Session, who: Principal, now: dt.datetime) -> dict[str, Any]:
        return {**_context(session, who), "error": None}

    return _render(request, Action.SECRET_READ, "secrets.html", "Secrets", build)


async def _form(request: Request) -> dict[str, str]:
    form = parse_qs((await request.body()).decode("utf-8", "replace"),
                    keep_blank_values=True)
    return {k: v[0] for k, v in form.items() if v}


def _act(request: Request, form: dict[str, str], revoke: bool) -> Response:
    if not _same_origin(request):
        return page("base.html", status=403, who=None,
                    title="refused: the form was posted from another site")
    state = state_of(request)
    group = form.get("group") or None
    app, name = form.get("app", "").strip(), form.get("name", "").strip()
    who: Principal | None = None
    try:
        with state.db.transaction() as session:
            who = tokens.authenticate(session, request.cookies.get(COOKIE), state.clock())
            if revoke:
                secretstore.revoke(session, who, app, name, group, state.clock())
            else:
                secretstore.put(session, who, state.master(), app, name, group,
                                form.get("value", "").replace("\r\n", "\n").encode(),
                                state.clock())
    except AuthenticationError:
        return RedirectResponse("/login", status_code=303, headers=HEADERS)
    except Error as e:  # the message names what was wrong, never the value
        if who is None:
            raise
        with state.db.transaction() as session:
            context = _context(session, who)
        return page("secrets.html", status=status_of(e), title="Secrets", who=who,
                    error=e.message, **context)
    return RedirectResponse("/secrets", status_code=303, headers=HEADERS)


@router.post("/secrets")
async def set_secret(request: Request) -> Response:
    """Set a secret from the form (tenant admins): a new version."""
    return await run_in_threadpool(_act, request, await _form(request), False)


@router.post("/secrets/revoke")
async def revoke_secret(request: Request) -> Response:
    """Revoke a secret from its row's button (tenant admins)."""
    return await run_in_threadpool(_act, request, await _form(request), True)
