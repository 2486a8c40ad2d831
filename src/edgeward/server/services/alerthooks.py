"""A tenant's alert web hook: where its new alerts are posted, and the key that signs them.

One hook per tenant, set by its admins: an ``https://`` URL (plain ``http://`` only to
the server's own loopback, ``localhost``/``127.0.0.0/8``/``::1``, for a receiver on the
same machine; no user name or password in it). It reaches only the public internet
unless the server's operator allows more networks (loopback included), see
:mod:`.hookreach`. Setting it answers a new random signing
key once; the server keeps it only encrypted under the tenant's envelope key, bound to
the tenant and the URL (a URL changed in the database makes it undecryptable, so signed
alerts cannot be redirected by editing a row). Each alert is posted as compact JSON with
``X-Edgeward-Signature: sha256=<HMAC-SHA256 of the body, keyed with the signing key as
given (its 64 hex characters)>`` and ``X-Edgeward-Delivery: <alert id>``; delivery is at
least once (a receiver deduplicates on the alert id). The platform's hook carries the
alerts of the unassigned pool. The posting itself is :mod:`.hookworker`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeward.errors import InputError, NotFound
from edgeward.server.db.models import Alert, Gateway, Tenant
from edgeward.server.db.monitoring import AlertHook
from edgeward.server.services import alerts, audit, hookreach, keystore
from edgeward.server.services.authz import PLATFORM_TENANT, Action, Principal, authorize
from edgeward.trust import vault

MAX_URL = 500


def check_url(url: str, allow: tuple[hookreach.Network, ...] = ()) -> str:
    """The hook URL, or why not: https, or http to loopback only; no credentials in it;
    an address (or ``localhost``) in it on the public internet or in ``allow``."""
    if len(url) > MAX_URL or not url.isprintable() or any(c.isspace() for c in url):
        raise InputError(f"a hook URL is at most {MAX_URL} printable characters, no spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InputError(f"hook URL {url!r} does not parse: {e}") from e
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise InputError(f"hook URL {url!r}: give https://HOST/PATH")
    if parts.username is not None or parts.password is not None:
        raise InputError("a hook URL may not carry a user name or password")
    if parts.fragment:
        raise InputError("a hook URL has no #fragment")
    if port == 0:
        raise InputError("a hook URL's port is 1-65535")
    if parts.scheme == "http" and not hookreach.loopback(host):
        raise InputError("a hook URL is https://; plain http:// only to this machine "
                         "(localhost, 127.0.0.1, ::1)")
    hookreach.judge_written(host, allow)
    return url


def _binding(tenant_id: int, url: str) -> bytes:
    return vault.binding("alert-hook", tenant_id, url)


def scope_of(session: Session, tenant_id: int) -> int | None:
    """Whose alerts a tenant's hook carries: its own; the platform's, the unassigned pool."""
    name = session.execute(select(Tenant.name).where(Tenant.id == tenant_id)).scalar_one()
    return None if name == PLATFORM_TENANT else tenant_id


def _row(session: Session, tenant_id: int) -> AlertHook | None:
    return session.execute(select(AlertHook).where(AlertHook.tenant_id == tenant_id)
                           ).scalar_one_or_none()


def describe(hook: AlertHook) -> dict[str, Any]:
    return {"url": hook.url, "delivered": hook.delivered, "failed": hook.failed,
            "last_error": hook.last_error, "last_alert_id": hook.last_alert_id,
            "created_by": hook.created_by, "created_at": alerts.iso(hook.created_at)}


def put(session: Session, principal: Principal, master: bytes, url: str, now: dt.datetime,
        allow: tuple[hookreach.Network, ...] = ()) -> tuple[AlertHook, str]:
    """Set (or replace) the tenant's hook; answer it and its new signing key (shown once).
    A new hook starts after the newest alert; a replaced one keeps its place. ``allow``:
    the networks besides the public internet the server's operator lets hooks reach."""
    authorize(principal, Action.ALERT_HOOK)
    check_url(url, allow)
    key = secrets.token_hex(32)
    envelope = keystore.tenant_key(session, master, principal.tenant_id, now)
    sealed = vault.encrypt(envelope, key.encode(), _binding(principal.tenant_id, url))
    hook = _row(session, principal.tenant_id)
    if hook is None:
        newest = session.execute(select(func.max(Alert.id)).where(
            alerts.in_scope(scope_of(session, principal.tenant_id)))).scalar_one()
        hook = AlertHook(tenant_id=principal.tenant_id, last_alert_id=newest or 0)
        session.add(hook)
    hook.url, hook.secret, hook.created_by, hook.created_at = url, sealed, principal.actor, now
    hook.delivered, hook.failed, hook.last_error = 0, 0, ""
    session.flush()
    audit.record(session, principal.tenant_id, principal.actor, "alert-hook.set",
                 "alert-hook", now, url=url)
    return hook, key


def show(session: Session, principal: Principal) -> AlertHook:
    authorize(principal, Action.ALERT_HOOK)
    hook = _row(session, principal.tenant_id)
    if hook is None:
        raise NotFound(f"tenant {principal.tenant} has no alert hook")
    return hook


def remove(session: Session, principal: Principal, now: dt.datetime) -> None:
    hook = show(session, principal)
    audit.record(session, principal.tenant_id, principal.actor, "alert-hook.delete",
                 "alert-hook", now, url=hook.url)
    session.delete(hook)


# -- what the worker posts ----------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    hook_id: int
    url: str
    alert_id: int
    at: dt.datetime
    body: bytes
    signature: str


def payload(alert: Alert, serial: str | None) -> bytes:
    return json.dumps({"id": alert.id, "at": alerts.iso(alert.at), "gateway": serial,
                       "kind": alert.kind, "app": alert.app, "severity": alert.severity,
                       "detail": alert.detail, "evidence": alert.evidence},
                      sort_keys=True, separators=(",", ":")).encode()


def sign(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify(key: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): compare in constant time."""
    return hmac.compare_digest(sign(key, body), signature)


def hooks(session: Session) -> list[AlertHook]:
    return list(session.execute(select(AlertHook).order_by(AlertHook.id)).scalars())


def due(session: Session, master: bytes, hook: AlertHook, now: dt.datetime,
        late: dt.timedelta, skip: set[int], limit: int) -> list[Delivery]:
    """The hook's alerts to post, oldest first: those past its cursor, and those not in
    ``skip`` raised within ``late`` behind it (a transaction that took its id before a
    later one but committed after it: PostgreSQL's ids are not in commit order)."""
    assert hook.tenant_id is not None
    scope = alerts.in_scope(scope_of(session, hook.tenant_id))
    recent = (Alert.id <= hook.last_alert_id) & (Alert.at >= now - late)
    if skip:
        recent = recent & Alert.id.not_in(skip)
    rows = session.execute(
        select(Alert, Gateway.serial).outerjoin(Gateway, Alert.gateway_id == Gateway.id)
        .where(scope, (Alert.id > hook.last_alert_id) | recent)
        .order_by(Alert.id).limit(limit)).all()
    if not rows:
        return []
    key = vault.decrypt(keystore.key_of(session, master, keystore.tenant_owner(hook.tenant_id)),
                        hook.secret, _binding(hook.tenant_id, hook.url)).decode()
    return [Delivery(hook.id, hook.url, alert.id, alert.at, body, sign(key, body))
            for alert, serial in rows for body in [payload(alert, serial)]]


def seen_within(session: Session, hook: AlertHook, now: dt.datetime, late: dt.timedelta
                ) -> dict[int, dt.datetime]:
    """Alerts behind the cursor raised within ``late``: taken as posted when a worker
    first meets the hook (after a restart), so they are not posted again."""
    assert hook.tenant_id is not None
    rows = session.execute(select(Alert.id, Alert.at).where(
        alerts.in_scope(scope_of(session, hook.tenant_id)), Alert.id <= hook.last_alert_id,
        Alert.at >= now - late))
    return {alert_id: at for alert_id, at in rows}


def outcome(session: Session, delivery: Delivery, error: str | None) -> bool:
    """Count a delivery (or its failure) on the hook, if it is still the same hook and
    URL; move its cursor past a delivered alert. Whether the hook is still there."""
    if error is not None:
        return failed(session, delivery.hook_id, delivery.url, error)
    hook = session.get(AlertHook, delivery.hook_id, with_for_update=True)
    if hook is None or hook.url != delivery.url:
        return False
    hook.delivered += 1
    hook.last_alert_id = max(hook.last_alert_id, delivery.alert_id)
    hook.last_error = ""
    return True


def failed(session: Session, hook_id: int, url: str, error: str) -> bool:
    hook = session.get(AlertHook, hook_id, with_for_update=True)
    if hook is None or hook.url != url:
        return False
    hook.failed += 1
    hook.last_error = error[:300]
    return True
