"""Request bodies: strict (unknown fields refused), bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edgeward.server.services.authz import Role

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Serial = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Version = Annotated[str, StringConstraints(max_length=64)]
TokenPrefix = Annotated[str, StringConstraints(pattern=r"^ewt_[A-Za-z0-9_-]{6}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrolRequest(Strict):
    record: str = Field(max_length=1 << 16)
    station_certificate: str = Field(max_length=1 << 14)


class QuoteRequest(Strict):
    nonce: str = Field(pattern=r"^[0-9a-f]{64}$")
    quote: str = Field(max_length=1 << 16)


class HeartbeatRequest(Strict):
    slot: Literal["a", "b"]
    boot_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    versions: dict[Literal["bl2", "kernel", "rootfs"], Version] = Field(max_length=3)


class TenantRequest(Strict):
    name: Name


class UserRequest(Strict):
    name: Name
    role: Role
    tenant: Name | None = None


class TokenRequest(Strict):
    user: Name
    tenant: Name | None = None


class AssignRequest(Strict):
    tenant: Name
