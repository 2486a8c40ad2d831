"""Who may do what: one ``Action`` enum, roles as sets of actions, one check.

Every API route declares the action it needs; :func:`authorize` is the only
place that decides. A principal acts within its own tenant and nowhere else;
a tenant-scoped lookup of another tenant's object answers "not found", so a
principal cannot even learn what exists elsewhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgeward.errors import PermissionDenied


class Action(enum.StrEnum):
    GATEWAY_LIST = "gateway:list"
    GATEWAY_READ = "gateway:read"
    GATEWAY_REVOKE = "gateway:revoke"
    GATEWAY_CLAIM = "gateway:claim"
    AUDIT_READ = "audit:read"
    ALERT_READ = "alert:read"
    ALERT_MANAGE = "alert:manage"          # acknowledge, judge (true/false positive), resolve
    ALERT_HOOK = "alert:hook"              # where the tenant's alerts are posted, signed
    GATEWAY_REMEDIATE = "gateway:remediate"  # stop or cut off an app, quarantine a gateway
    USER_READ = "user:read"
    USER_MANAGE = "user:manage"
    TOKEN_MANAGE = "token:manage"  # noqa: S105 (an action name, not a secret)
    TENANT_MANAGE = "tenant:manage"
    GROUP_MANAGE = "group:manage"          # a tenant's gateway groups: channel, window, pin
    RELEASE_READ = "release:read"          # published OS releases, rollouts, update progress
    RELEASE_PUBLISH = "release:publish"    # upload signed TUF metadata and targets (platform)
    ROLLOUT_MANAGE = "rollout:manage"      # start, pause, resume, abort rollouts (platform)
    APP_PUBLISH = "app:publish"            # a tenant's own apps-<tenant> TUF role and files
    APP_MODE = "app:mode"                  # complain/enforce an app's confinement on a gateway
    # secrets (action names, not secrets): names, groups and versions, never a value; set
    # (a new version) and revoke a tenant's; a gateway's recovery key and its credentials
    SECRET_READ = "secret:read"  # noqa: S105
    SECRET_MANAGE = "secret:manage"  # noqa: S105
    SECRET_REVEAL = "secret:reveal"  # noqa: S105


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_VIEWER = frozenset({Action.GATEWAY_LIST, Action.GATEWAY_READ, Action.AUDIT_READ,
                     Action.ALERT_READ, Action.USER_READ, Action.RELEASE_READ,
                     Action.SECRET_READ})
_OPERATOR = _VIEWER | {Action.GATEWAY_REVOKE, Action.GATEWAY_CLAIM, Action.GROUP_MANAGE,
                       Action.ALERT_MANAGE, Action.GATEWAY_REMEDIATE}
# Secrets are admin-only, operators included out: a secret set is what every gateway's apps
# then authenticate with (set the broker password and the broker URL, and an app talks to
# whoever chose them), and a recovery key or credential revealed opens a device's data or a
# customer's service. That is the weight of publishing apps or opening their sandbox
# (complain mode), which are admin's too; operators run the fleet without holding its keys.
# The alert web hook is admins' too: it sends the tenant's alerts out, signed with its key.
_ADMIN = _OPERATOR | {Action.USER_MANAGE, Action.TOKEN_MANAGE, Action.APP_PUBLISH,
                      Action.APP_MODE, Action.SECRET_MANAGE, Action.SECRET_REVEAL,
                      Action.ALERT_HOOK}
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: _VIEWER, Role.OPERATOR: _OPERATOR, Role.ADMIN: _ADMIN,
}
PLATFORM_TENANT = "platform"  # its admins also manage tenants; they see no tenant's fleet


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    tenant_id: int
    tenant: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def platform(self) -> bool:
        return self.tenant == PLATFORM_TENANT and self.role is Role.ADMIN

    def scope(self) -> int | None:
        """Whose rows this principal sees: its tenant's; for a platform admin, the
        unassigned pool (gateways enrolled at the factory, not yet handed to a tenant)
        besides its own tenant's audit."""
        return None if self.platform else self.tenant_id

    def allowed(self) -> frozenset[Action]:
        actions = ROLE_ACTIONS[self.role]
        if self.platform:  # the platform is also the OS vendor: it publishes and rolls out
            actions = actions | {Action.TENANT_MANAGE, Action.RELEASE_PUBLISH,
                                 Action.ROLLOUT_MANAGE}
        return actions


def authorize(principal: Principal, action: Action) -> None:
    if action not in principal.allowed():
        raise PermissionDenied(f"{principal.actor} ({principal.role}) may not {action}")
