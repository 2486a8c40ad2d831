"""API tokens: random, shown once, stored only as SHA-256 hashes.

A token is ``ewt_`` + 43 url-safe characters (256 bits): far too much entropy
for a dictionary, so a fast hash suffices and lookups go by hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeward.errors import AuthenticationError, NotFound
from edgeward.server.db.models import ApiToken, Tenant, User
from edgeward.server.services import audit
from edgeward.server.services.authz import Action, Principal, Role, authorize

PREFIX = "ewt_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: Session, user_id: int, now: dt.datetime) -> str:
    """A new token for ``user_id``; the only time its plaintext exists."""
    if session.get(User, user_id) is None:
        raise NotFound(f"no user {user_id}")
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user_id, token_hash=token_hash(token), prefix=token[:10],
                         created_at=now))
    return token


def authenticate(session: Session, token: str | None, now: dt.datetime) -> Principal:
    if not token or not token.startswith(PREFIX) or len(token) > 128:
        raise AuthenticationError("a valid API token is required")
    wanted = token_hash(token)
    row = session.execute(
        select(ApiToken, User, Tenant).join(User, ApiToken.user_id == User.id)
        .join(Tenant, User.tenant_id == Tenant.id).where(ApiToken.token_hash == wanted)
    ).first()
    if row is None or not hmac.compare_digest(row[0].token_hash, wanted):
        raise AuthenticationError("a valid API token is required")
    api_token, user, tenant = row
    if api_token.revoked_at is not None:
        raise AuthenticationError("this API token was revoked")
    api_token.last_used_at = now
    return Principal(user.id, user.name, tenant.id, tenant.name, Role(user.role))


def issue_for(session: Session, principal: Principal, user: str, now: dt.datetime,
              tenant: str | None = None) -> str:
    """An admin issues a token to a user of their tenant (a platform admin: of any)."""
    if tenant is not None and tenant != principal.tenant:
        authorize(principal, Action.TENANT_MANAGE)
        where = Tenant.name == tenant
    else:
        authorize(principal, Action.TOKEN_MANAGE)
        where, tenant = Tenant.id == principal.tenant_id, principal.tenant
    found = session.execute(
        select(User).join(Tenant, User.tenant_id == Tenant.id).where(where, User.name == user)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no user {user} in tenant {tenant}")
    token = issue(session, found.id, now)
    audit.record(session, found.tenant_id, principal.actor, "token.issue", user, now,
                 prefix=token[:10])
    return token


def revoke(session: Session, principal: Principal, prefix: str, now: dt.datetime) -> None:
    """Revoke a token of the principal's tenant, named by its shown prefix."""
    authorize(principal, Action.TOKEN_MANAGE)
    row = session.execute(
        select(ApiToken).join(User, ApiToken.user_id == User.id)
        .where(User.tenant_id == principal.tenant_id, ApiToken.prefix == prefix)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no token {prefix}… in tenant {principal.tenant}")
    row.revoked_at = now
    audit.record(session, principal.tenant_id, principal.actor, "token.revoke", prefix, now)
