"""Tokens, roles and tenants: only hashes stored, one check, tenants kept apart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from edgeward.errors import AuthenticationError, Conflict, NotFound, PermissionDenied
from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import ApiToken, AuditEvent
from edgeward.server.services import audit, tenants, tokens
from edgeward.server.services.authz import (
    PLATFORM_TENANT,
    ROLE_ACTIONS,
    Action,
    Principal,
    Role,
    authorize,
)

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.close()


def bootstrap(db: Database) -> dict[str, str]:
    """Two tenants with an admin, an operator and a viewer each, and a platform admin."""
    issued = {}
    with db.transaction() as s:
        for tenant_name in (PLATFORM_TENANT, "hotels", "warehouses"):
            tenant = tenants.create_tenant(s, tenant_name, NOW)
            for role in Role:
                user = tenants.create_user(s, tenant.id, f"{role.value}-1", role, NOW)
                issued[f"{tenant_name}/{role.value}"] = tokens.issue(s, user.id, NOW)
    return issued


def principal(db: Database, token: str) -> Principal:
    with db.transaction() as s:
        return tokens.authenticate(s, token, NOW)


def test_only_token_hashes_are_stored(db: Database) -> None:
    issued = bootstrap(db)
    with db.transaction() as s:
        stored = [t.token_hash for t in s.execute(select(ApiToken)).scalars()]
    assert len(stored) == len(issued)
    for token in issued.values():
        assert token not in stored and tokens.token_hash(token) in stored


def test_missing_wrong_and_revoked_tokens_are_refused(db: Database) -> None:
    issued = bootstrap(db)
    for bad in (None, "", "ewt_nope", "Bearer x", issued["hotels/admin"] + "x", "x" * 500):
        with pytest.raises(AuthenticationError):
            principal(db, bad)  # type: ignore[arg-type]
    admin = principal(db, issued["hotels/admin"])
    with db.transaction() as s:
        tokens.revoke(s, admin, issued["hotels/viewer"][:10], NOW)
    with pytest.raises(AuthenticationError, match="revoked"):
        principal(db, issued["hotels/viewer"])


def test_roles_grant_exactly_their_actions(db: Database) -> None:
    issued = bootstrap(db)
    for role in Role:
        who = principal(db, issued[f"hotels/{role.value}"])
        for action in Action:
            if action in ROLE_ACTIONS[role]:
                authorize(who, action)
            else:
                with pytest.raises(PermissionDenied):
                    authorize(who, action)
    assert Action.TENANT_MANAGE in principal(db, issued["platform/admin"]).allowed()
    assert Action.TENANT_MANAGE not in principal(db, issued["hotels/admin"]).allowed()


def test_tenants_never_see_each_other(db: Database) -> None:
    issued = bootstrap(db)
    hotels = principal(db, issued["hotels/admin"])
    warehouses = principal(db, issued["warehouses/admin"])
    with db.transaction() as s:
        tenants.add_user(s, hotels, "night-desk", Role.VIEWER, NOW)
        token = tokens.issue_for(s, hotels, "night-desk", NOW)
    with db.transaction() as s:
        assert "night-desk" in {u.name for u in tenants.users(s, hotels)}
        assert "night-desk" not in {u.name for u in tenants.users(s, warehouses)}
        with pytest.raises(NotFound):
            tokens.issue_for(s, warehouses, "night-desk", NOW)
        with pytest.raises(NotFound):
            tokens.revoke(s, warehouses, token[:10], NOW)
        with pytest.raises(PermissionDenied):
            tenants.add_user(s, hotels, "intruder", Role.ADMIN, NOW, tenant="warehouses")
        assert all(e.tenant_id == warehouses.tenant_id for e in audit.events(s, warehouses))
        assert {e.action for e in audit.events(s, hotels)} >= {"user.create", "token.issue"}


def test_viewers_and_operators_cannot_manage(db: Database) -> None:
    issued = bootstrap(db)
    for role in ("viewer", "operator"):
        who = principal(db, issued[f"hotels/{role}"])
        with db.transaction() as s, pytest.raises(PermissionDenied):
            tenants.add_user(s, who, "x", Role.ADMIN, NOW)
        with db.transaction() as s, pytest.raises(PermissionDenied):
            tokens.issue_for(s, who, "viewer-1", NOW)


def test_platform_admin_creates_tenants_and_their_first_admin(db: Database) -> None:
    issued = bootstrap(db)
    platform = principal(db, issued["platform/admin"])
    with db.transaction() as s:
        tenants.add_tenant(s, platform, "offices", NOW)
        tenants.add_user(s, platform, "boss", Role.ADMIN, NOW, tenant="offices")
    with db.transaction() as s, pytest.raises(Conflict):
        tenants.add_tenant(s, platform, "offices", NOW)
    with db.transaction() as s, pytest.raises(PermissionDenied):
        tenants.add_tenant(s, principal(db, issued["hotels/admin"]), "rogue", NOW)


def test_a_failed_action_writes_nothing(db: Database) -> None:
    issued = bootstrap(db)
    hotels = principal(db, issued["hotels/admin"])
    with pytest.raises(Conflict), db.transaction() as s:
        tenants.add_user(s, hotels, "dup", Role.VIEWER, NOW)
        tenants.add_user(s, hotels, "dup", Role.VIEWER, NOW)
    with db.transaction() as s:
        assert "dup" not in {u.name for u in tenants.users(s, hotels)}
        assert not s.execute(select(AuditEvent).where(AuditEvent.target == "dup")).first()
