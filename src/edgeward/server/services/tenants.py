"""Tenants and their users."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgeward.errors import Conflict, InputError, NotFound
from edgeward.server.db.models import Tenant, User
from edgeward.server.services import audit
from edgeward.server.services.authz import Action, Principal, Role, authorize

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_name(kind: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise InputError(f"{kind} name {name!r}: use 1-64 of a-z, 0-9, '.', '_', '-'")
    return name


def create_tenant(session: Session, name: str, now: dt.datetime) -> Tenant:
    """Create a tenant (platform bootstrap, or a platform admin via the API)."""
    check_name("tenant", name)
    if session.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none():
        raise Conflict(f"tenant {name} already exists")
    tenant = Tenant(name=name, created_at=now)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(f"tenant {name} already exists") from e
    return tenant


def add_tenant(session: Session, principal: Principal, name: str, now: dt.datetime) -> Tenant:
    authorize(principal, Action.TENANT_MANAGE)
    tenant = create_tenant(session, name, now)
    audit.record(session, principal.tenant_id, principal.actor, "tenant.create", name, now)
    return tenant


def create_user(session: Session, tenant_id: int, name: str, role: Role,
                now: dt.datetime) -> User:
    check_name("user", name)
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id}")
    exists = session.execute(
        select(User).where(User.tenant_id == tenant_id, User.name == name)).scalar_one_or_none()
    if exists:
        raise Conflict(f"user {name} already exists in this tenant")
    user = User(tenant_id=tenant_id, name=name, role=role.value, created_at=now)
    session.add(user)
    session.flush()
    return user


def add_user(session: Session, principal: Principal, name: str, role: Role,
             now: dt.datetime, tenant: str | None = None) -> User:
    """An admin adds a user to their tenant; a platform admin may name another tenant."""
    target = principal.tenant_id
    if tenant is not None and tenant != principal.tenant:
        authorize(principal, Action.TENANT_MANAGE)
        found = session.execute(select(Tenant).where(Tenant.name == tenant)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no tenant {tenant}")
        target = found.id
    else:
        authorize(principal, Action.USER_MANAGE)
    user = create_user(session, target, name, role, now)
    audit.record(session, target, principal.actor, "user.create", name, now, role=role.value)
    return user


def users(session: Session, principal: Principal) -> list[User]:
    authorize(principal, Action.USER_READ)
    return list(session.execute(
        select(User).where(User.tenant_id == principal.tenant_id).order_by(User.name)).scalars())
