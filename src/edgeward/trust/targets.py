"""What edgeward puts in TUF: role names, target paths and the custom fields of releases.

Top-level ``targets`` (offline) delegates ``os/*`` to the OS vendor's role ``os``
and ``apps/<tenant>/*`` to each tenant's role ``apps-<tenant>``; both
delegations are terminating, so nothing else can speak for those paths.

An OS release is a pair of targets, ``os/<model>/<version>/kernel.img`` and
``.../rootfs.img`` (and, where the previous release is the base,
``.../rootfs.delta-<base>.zst``), each with ``custom.edgeward``:
``kind``, ``model``, ``version``, ``channel``, ``security_version`` and, on a
delta, ``base_version``/``base_sha384``/``full``; on the kernel,
``measurements`` (what attestation accepts for this release). Parsing is
strict: a target with malformed fields is refused, not guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edgeward.errors import ManifestError

OS_ROLE = "os"
TUF_ROOT = "etc/edgeward/tuf/root.json"  # the update client's trust anchor, in the rootfs
CHANNELS = ("stable", "candidate", "beta", "edge")  # each channel also takes the ones before
KINDS = ("kernel", "rootfs", "rootfs-delta")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")  # models, tenants
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$")
HEX384 = re.compile(r"^[0-9a-f]{96}$")


def check_name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise ManifestError(f"{what} {value!r}: use lowercase letters, digits, '.', '_', '-'")
    return value


def check_version(value: str) -> str:
    if not VERSION.match(value):
        raise ManifestError(f"version {value!r} is not a valid release version")
    return value


def tenant_role(tenant: str) -> str:
    return f"apps-{check_name(tenant, 'tenant')}"


def tenant_paths(tenant: str) -> list[str]:
    # TUF's "*" stops at "/": one pattern per depth (app/version/file at most)
    base = f"apps/{check_name(tenant, 'tenant')}"
    return [f"{base}/*", f"{base}/*/*", f"{base}/*/*/*"]


OS_PATHS = ["os/*/*/*"]  # os/<model>/<version>/<file>


def os_dir(model: str, version: str) -> str:
    return f"os/{check_name(model, 'model')}/{check_version(version)}"


def kernel_path(model: str, version: str) -> str:
    return f"{os_dir(model, version)}/kernel.img"


def rootfs_path(model: str, version: str) -> str:
    return f"{os_dir(model, version)}/rootfs.img"


def delta_path(model: str, version: str, base_version: str) -> str:
    return f"{os_dir(model, version)}/rootfs.delta-{check_version(base_version)}.zst"


MAX_TPM_POLICY = 4096


@dataclass(frozen=True)
class OsTarget:
    """The custom fields of one OS target, checked."""

    kind: str
    model: str
    version: str
    channel: str
    security_version: int
    base_version: str | None = None
    base_sha384: str | None = None
    full: str | None = None  # for a delta: the full rootfs target it rebuilds
    measurements: tuple[tuple[str, str], ...] = ()
    tpm_policy: str = ""  # a kernel's approved TPM policy (trust/bootpolicy.py), base64

    def custom(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "model": self.model,
                                "version": self.version, "channel": self.channel,
                                "security_version": self.security_version}
        if self.kind == "rootfs-delta":
            body.update(base_version=self.base_version, base_sha384=self.base_sha384,
                        full=self.full)
        if self.measurements:
            body["measurements"] = dict(self.measurements)
        if self.tpm_policy:
            body["tpm_policy"] = self.tpm_policy
        return {"edgeward": body}


def parse_os_target(path: str, custom: dict[str, Any]) -> OsTarget:
    """The checked custom fields of ``path`` (ManifestError naming the target if not)."""
    body = custom.get("edgeward")
    if not isinstance(body, dict):
        raise ManifestError(f"target {path}: no edgeward custom fields")

    def text(key: str, pattern: re.Pattern[str] | None = None) -> str:
        value = body.get(key)
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise ManifestError(f"target {path}: custom field {key!r} is missing or invalid")
        return value

    kind, model, version, channel = text("kind"), text("model", NAME), \
        text("version", VERSION), text("channel")
    svn = body.get("security_version")
    if kind not in KINDS:
        raise ManifestError(f"target {path}: unknown kind {kind!r}")
    if channel not in CHANNELS:
        raise ManifestError(f"target {path}: unknown channel {channel!r}")
    if not isinstance(svn, int) or isinstance(svn, bool) or not 0 <= svn <= 64:
        raise ManifestError(f"target {path}: security_version must be an integer 0..64")
    expected = {"kernel": kernel_path(model, version), "rootfs": rootfs_path(model, version)}
    if kind in expected and path != expected[kind]:
        raise ManifestError(f"target {path}: a {kind} of {model} {version} must be named "
                            f"{expected[kind]}")
    if kind != "rootfs-delta":
        measurements = body.get("measurements", {})
        if not isinstance(measurements, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in measurements.items()):
            raise ManifestError(f"target {path}: measurements must map names to digests")
        policy = body.get("tpm_policy", "")
        if not isinstance(policy, str) or len(policy) > MAX_TPM_POLICY or (
                policy and kind != "kernel"):
            raise ManifestError(f"target {path}: tpm_policy must be a kernel's base64 policy")
        return OsTarget(kind, model, version, channel, svn,
                        measurements=tuple(sorted(measurements.items())), tpm_policy=policy)
    base = text("base_version", VERSION)
    if path != delta_path(model, version, base):
        raise ManifestError(f"target {path}: this delta must be named "
                            f"{delta_path(model, version, base)}")
    full = text("full")
    if full != rootfs_path(model, version):
        raise ManifestError(f"target {path}: a delta rebuilds {rootfs_path(model, version)}")
    return OsTarget(kind, model, version, channel, svn, base, text("base_sha384", HEX384),
                    full)


# --- apps ------------------------------------------------------------------------------


def app_path(tenant: str, name: str, version: str) -> str:
    """``apps/<tenant>/<app>/<version>/<app>_<version>.squashfs``: under the tenant's role."""
    return (f"apps/{check_name(tenant, 'tenant')}/{check_name(name, 'app')}/"
            f"{check_version(version)}/{name}_{version}.squashfs")


@dataclass(frozen=True)
class AppTarget:
    name: str
    version: str
    publisher: str

    def custom(self) -> dict[str, Any]:
        return {"edgeward": {"kind": "app", "name": self.name, "version": self.version,
                             "publisher": self.publisher}}


def parse_app_target(path: str, custom: dict[str, Any]) -> AppTarget:
    body = custom.get("edgeward")
    if not isinstance(body, dict) or body.get("kind") != "app":
        raise ManifestError(f"target {path}: not an app")
    fields = [body.get(k) for k in ("name", "version", "publisher")]
    if not all(isinstance(f, str) for f in fields):
        raise ManifestError(f"target {path}: app custom fields are missing")
    found = AppTarget(*fields)  # type: ignore[arg-type]
    if path != app_path(found.publisher, found.name, found.version):
        raise ManifestError(f"target {path}: its custom fields name "
                            f"{app_path(found.publisher, found.name, found.version)}")
    return found
