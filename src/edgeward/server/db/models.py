"""Tables of the fleet server.

Every row that belongs to a customer carries its ``tenant_id``; services
filter on it, so one tenant never sees another's gateways, users or events.
API tokens are stored only as SHA-256 hashes; secrets, recovery keys and credentials
only encrypted (see :mod:`edgeward.trust.vault`), never the master key.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    cert_sha384: Mapped[str] = mapped_column(String(96), unique=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    record: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="enrolled")
    attestation: Mapped[str] = mapped_column(String(16), default="unknown")
    attestation_detail: Mapped[str] = mapped_column(Text, default="")
    attested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    slot: Mapped[str] = mapped_column(String(1), default="")
    versions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    enrolled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    boot_id: Mapped[str] = mapped_column(String(32), default="")
    previous_boot_id: Mapped[str] = mapped_column(String(32), default="")
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateway_groups.id", ondelete="SET NULL"), index=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Nonce(Base):
    """A challenge issued to one gateway for one quote; used once, valid briefly."""

    __tablename__ = "nonces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"),
                                            index=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Alert(Base):
    """Something an operator must look at: open, acknowledged or resolved; judged a true
    or false positive; with the evidence that raised it."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_tenant_at", "tenant_id", "at"),
                      Index("ix_alerts_tenant_status", "tenant_id", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    severity: Mapped[str] = mapped_column(String(8), default="medium",
                                          server_default="medium")
    status: Mapped[str] = mapped_column(String(12), default="open", server_default="open")
    verdict: Mapped[str | None] = mapped_column(String(16))  # true-positive, false-positive
    app: Mapped[str] = mapped_column(String(64), default="", server_default="")
    source: Mapped[str] = mapped_column(String(16), default="", server_default="")
    evidence: Mapped[dict[str, object] | None] = mapped_column(JSON)
    acked_by: Mapped[str | None] = mapped_column(String(128))
    acked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class GatewayGroup(Base):
    """A tenant's update policy for some of its gateways (none: stable, any time, auto)."""

    __tablename__ = "gateway_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16), default="stable")
    pinned_version: Mapped[str | None] = mapped_column(String(64))
    window: Mapped[str] = mapped_column(String(16), default="")  # "" or "HH:MM-HH:MM" UTC
    auto_update: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AppAssignment(Base):
    """An app a group's gateways run: publisher (a tenant), name, version, and the
    interfaces the operator grants it (what the manifest asks for beyond these is not
    given)."""

    __tablename__ = "app_assignments"
    __table_args__ = (UniqueConstraint("group_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("gateway_groups.id", ondelete="CASCADE"))
    publisher: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    grants: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class OsRelease(Base):
    """An OS release as the signed ``os`` TUF role lists it (kept when yanked: history)."""

    __tablename__ = "os_releases"
    __table_args__ = (UniqueConstraint("model", "version"),
                      Index("ix_os_releases_model_seq", "model", "seq"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    security_version: Mapped[int] = mapped_column(Integer)
    kernel_target: Mapped[str] = mapped_column(String(255))
    kernel_sha384: Mapped[str] = mapped_column(String(96))
    kernel_length: Mapped[int] = mapped_column(BigInteger)
    rootfs_target: Mapped[str] = mapped_column(String(255))
    rootfs_sha384: Mapped[str] = mapped_column(String(96))
    rootfs_length: Mapped[int] = mapped_column(BigInteger)
    delta_target: Mapped[str | None] = mapped_column(String(255))
    delta_sha384: Mapped[str | None] = mapped_column(String(96))
    delta_length: Mapped[int | None] = mapped_column(BigInteger)
    delta_base_version: Mapped[str | None] = mapped_column(String(64))
    delta_base_sha384: Mapped[str | None] = mapped_column(String(96))
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    seq: Mapped[int] = mapped_column(Integer, unique=True)  # publish order
    yanked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Rollout(Base):
    """A release offered stage by stage; advances on success, halts on failures."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_model_version", "model", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    stages: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    error_threshold: Mapped[int] = mapped_column(Integer, default=20)
    success_threshold: Mapped[int] = mapped_column(Integer, default=100)
    min_stage_minutes: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="running")
    current_stage: Mapped[int] = mapped_column(Integer, default=0)
    stage_started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True),
                                                          default=_now)
    halted_reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class GatewayUpdate(Base):
    """Where a gateway is in its OS update, as it last reported (one row per gateway)."""

    __tablename__ = "gateway_updates"

    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"),
                                            primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    rollout_id: Mapped[int | None] = mapped_column(
        ForeignKey("rollouts.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class UpdateEvent(Base):
    """Append-only history of update phases, for the dashboard and rollout tallies."""

    __tablename__ = "update_events"
    __table_args__ = (Index("ix_update_events_gateway_at", "gateway_id", "at"),
                      Index("ix_update_events_version_phase", "version", "phase"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    version: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    rollout_id: Mapped[int | None] = mapped_column(
        ForeignKey("rollouts.id", ondelete="SET NULL"))


# -- apps at run time (issue 6): denials, status, modes, learnt profiles -----------------
#
# Each row keeps the tenant that held the gateway when it was written, and reads
# filter on it: a gateway handed to another tenant takes none of its old tenant's
# events, app status, modes or profiles along.

EventId = BigInteger().with_variant(Integer, "sqlite")  # SQLite: rowid autoincrement


class SecurityEvent(Base):
    """A denial (or other security event) a gateway reported; ``count`` identical ones."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_tenant_at", "tenant_id", "occurred_at"),
                      Index("ix_security_events_tenant_kind_at", "tenant_id", "kind",
                            "occurred_at"),
                      Index("ix_security_events_gateway_at", "gateway_id", "occurred_at"))

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(64))  # "" for the gateway itself
    kind: Mapped[str] = mapped_column(String(16))
    what: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    count: Mapped[int] = mapped_column(Integer, default=1)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class EventIntake(Base):
    """A gateway's token bucket for security events, and what it accepted and dropped
    (counted since ``tenant_id`` began holding the gateway)."""

    __tablename__ = "event_intake"

    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"),
                                            primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    last_drop_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class GatewayApp(Base):
    """An app as its gateway last reported it (the whole list is replaced each time)."""

    __tablename__ = "gateway_apps"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    publisher: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    granted: Mapped[list[str]] = mapped_column(JSON, default=list)
    withheld: Mapped[list[str]] = mapped_column(JSON, default=list)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AppMode(Base):
    """How an operator wants an app confined on one gateway: enforce (default) or
    complain (denials logged, not enforced: test gateways only)."""

    __tablename__ = "app_modes"
    __table_args__ = (UniqueConstraint("gateway_id", "app"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class AppProfile(Base):
    """What complain mode learnt an app needs on one gateway: the smallest interfaces
    and egress rules that let it run, and what no interface would allow."""

    __tablename__ = "app_profiles"
    __table_args__ = (UniqueConstraint("gateway_id", "app"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    interfaces: Mapped[list[str]] = mapped_column(JSON, default=list)
    egress: Mapped[list[str]] = mapped_column(JSON, default=list)
    denied: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    observed_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    observed_to: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


# -- secrets at rest (issue 7): envelope keys, tenants' secrets, escrow, credentials -----
#
# Values only as AES-256-GCM under an envelope key, itself wrapped under the master key
# that never enters the database (edgeward.trust.vault; services/keystore.py).


class KeyCheck(Base):
    """The one value a master key must match (derived from it): a wrong key is refused
    at start instead of decrypting to garbage later."""

    __tablename__ = "key_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class EnvelopeKey(Base):
    """An owner's data key, wrapped under the master key with the owner bound to it:
    ``tenant/<id>`` for a tenant, ``escrow`` for gateways' recovery keys."""

    __tablename__ = "envelope_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class TenantSecret(Base):
    """A tenant's secret for an app, for all its gateways (``scope`` "") or one group's
    (``scope`` its name); ``version`` goes up at every set; revoked: value erased."""

    __tablename__ = "tenant_secrets"
    __table_args__ = (UniqueConstraint("tenant_id", "app", "scope", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("gateway_groups.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RecoveryKey(Base):
    """A gateway's data-volume recovery key, escrowed under the escrow envelope key (it
    belongs to the device: it stays fetchable whichever tenant holds the gateway)."""

    __tablename__ = "recovery_keys"

    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"),
                                            primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    escrowed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DeviceCredential(Base):
    """A credential one gateway made for an app and reported, under the envelope key of
    the tenant holding the gateway then (the platform's while it has none)."""

    __tablename__ = "device_credentials"
    __table_args__ = (UniqueConstraint("gateway_id", "app", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))  # whose envelope key encrypts it
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


from edgeward.server.db import monitoring  # noqa: E402,F401  (its tables join Base)
