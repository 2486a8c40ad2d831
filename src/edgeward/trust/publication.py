"""Whether newly uploaded TUF metadata may be published: pure checks, bytes and time in.

The fleet server holds only the online snapshot and timestamp keys; root,
targets and every delegated role arrive signed offline. Before the server
publishes such metadata it checks what a client would check (signatures to
the delegating role's threshold, version strictly increasing, not expired)
and what only the repository can check (every target it names was uploaded
with that length and hash; every OS target's custom fields are well formed;
delegations follow edgeward's layout). A refusal says what and why.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root, Signed, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError

from edgeward.errors import InputError, ManifestError, RollbackError, SignatureError
from edgeward.trust.targets import OS_PATHS, OS_ROLE, parse_os_target, tenant_paths

HASH = "sha384"
_TENANT_ROLE = re.compile(r"^apps-([a-z0-9][a-z0-9._-]{0,62})$")
OFFLINE_TOP = (Root.type, Targets.type)
ONLINE = (Snapshot.type, Timestamp.type)


def parse(data: bytes, role: str) -> Metadata[Any]:
    """Deserialize ``role`` metadata (InputError on anything malformed)."""
    try:
        md: Metadata[Any] = Metadata.from_bytes(data)
    except (DeserializationError, ValueError, TypeError, KeyError) as e:
        raise InputError(f"{role} metadata is malformed: {e}") from e
    expected = role if role in (*OFFLINE_TOP, *ONLINE) else Targets.type
    if md.signed.type != expected:
        raise InputError(f"{role} metadata has type {md.signed.type!r}, expected {expected!r}")
    return md


def _verify(delegator: Root | Targets, role: str, md: Metadata[Any], who: str) -> None:
    try:
        delegator.verify_delegate(role, md.signed_bytes, md.signatures)
    except tuf_errors.UnsignedMetadataError as e:
        raise SignatureError(f"{role} metadata is not signed by {who}: {e}") from e
    except ValueError as e:  # no such delegated role
        raise SignatureError(f"{role} is not a role {who} delegates: {e}") from e


def _fresh(signed: Signed, role: str, current: Signed | None, now: dt.datetime) -> None:
    if signed.is_expired(now):
        raise InputError(f"{role} metadata expired at {signed.expires:%Y-%m-%d %H:%M} UTC")
    if current is not None and signed.version <= current.version:
        raise RollbackError(f"{role} version {signed.version} is not newer than the "
                            f"published version {current.version}")


def check_root(current: Metadata[Root] | None, data: bytes, now: dt.datetime
               ) -> Metadata[Root]:
    """A first root (self-signed to its threshold) or the next root, signed by the
    threshold of the current root *and* its own (python-tuf's root rotation rule)."""
    md: Metadata[Root] = parse(data, Root.type)
    root = md.signed
    if not root.consistent_snapshot:
        raise InputError("root must set consistent_snapshot (clients fetch by version)")
    if current is not None:
        if root.version != current.signed.version + 1:
            raise RollbackError(f"root version {root.version} must follow the published "
                                f"version {current.signed.version}")
        _verify(current.signed, Root.type, md, "the current root's threshold")
    elif root.version != 1:
        raise InputError("the first root must be version 1")
    _verify(root, Root.type, md, "its own root threshold")
    if root.is_expired(now):
        raise InputError(f"root metadata expired at {root.expires:%Y-%m-%d %H:%M} UTC")
    return md


def check_targets(root: Root, current: Metadata[Targets] | None, data: bytes,
                  now: dt.datetime) -> Metadata[Targets]:
    md: Metadata[Targets] = parse(data, Targets.type)
    _verify(root, Targets.type, md, "the root's targets keys")
    _fresh(md.signed, Targets.type, current.signed if current else None, now)
    if md.signed.targets:
        raise ManifestError("top-level targets names no files: every path is delegated "
                            "(os/* to the OS vendor, apps/<tenant>/* to each tenant)")
    delegations = md.signed.delegations
    if delegations is not None:
        if delegations.succinct_roles is not None:
            raise ManifestError("succinct delegations are not used by edgeward")
        for name, role in (delegations.roles or {}).items():
            expected = delegated_paths(name)
            if role.paths != expected or not role.terminating:
                raise ManifestError(f"delegation {name} must be terminating with paths "
                                    f"{expected}, not {role.paths}")
    return md


def delegated_paths(role: str) -> list[str]:
    if role == OS_ROLE:
        return OS_PATHS
    match = _TENANT_ROLE.match(role)
    if match is None:
        raise ManifestError(f"role {role!r}: delegated roles are 'os' and 'apps-<tenant>'")
    return tenant_paths(match.group(1))


Blobs = Callable[[str], int | None]  # sha384 hex -> stored length, or None


def check_delegated(targets: Targets, role: str, current: Metadata[Targets] | None,
                    data: bytes, now: dt.datetime, blobs: Blobs) -> Metadata[Targets]:
    md: Metadata[Targets] = parse(data, role)
    _verify(targets, role, md, "the keys top-level targets delegates it to")
    _fresh(md.signed, role, current.signed if current else None, now)
    delegation = (targets.delegations.roles or {}).get(role) if targets.delegations else None
    assert delegation is not None  # _verify found it
    if md.signed.delegations is not None:
        raise ManifestError(f"{role} may not delegate further")
    published = current.signed.targets if current else {}
    for path, target in md.signed.targets.items():
        before = published.get(path)
        if before is not None and (before.hashes, before.length) != (target.hashes,
                                                                    target.length):
            raise ManifestError(f"target {path} is already published with other bytes: "
                                "versions are immutable, publish a new one")
        if not delegation.is_delegated_path(path):
            raise ManifestError(f"{role} may not sign {path}: outside {delegation.paths}")
        digest = target.hashes.get(HASH)
        if digest is None or set(target.hashes) != {HASH}:
            raise ManifestError(f"target {path}: give exactly a {HASH} hash")
        stored = blobs(digest)
        if stored is None:
            raise ManifestError(f"target {path}: its file ({HASH} {digest[:16]}…) was not "
                                "uploaded")
        if stored != target.length:
            raise ManifestError(f"target {path}: signed length {target.length} but the "
                                f"uploaded file is {stored} bytes")
        if role == OS_ROLE:
            parse_os_target(path, target.unrecognized_fields)
    if role == OS_ROLE:
        check_os_releases(md.signed)
    return md


def check_os_releases(signed: Targets) -> None:
    """Every release has its kernel and rootfs, agreeing on channel and security version;
    a delta belongs to a release that is there."""
    releases: dict[tuple[str, str], dict[str, Any]] = {}
    for path, target in signed.targets.items():
        info = parse_os_target(path, target.unrecognized_fields)
        releases.setdefault((info.model, info.version), {})[info.kind] = info
    for (model, version), kinds in releases.items():
        if "kernel" not in kinds or "rootfs" not in kinds:
            raise ManifestError(f"release {model} {version} needs both a kernel and a rootfs")
        head = {(i.channel, i.security_version) for i in kinds.values()}
        if len(head) != 1:
            raise ManifestError(f"release {model} {version}: its targets disagree on "
                                "channel or security version")


def measurements(signed: Mapping[str, Any]) -> dict[str, set[str]]:
    """Digests the kernel targets of an ``os`` role say attestation may accept."""
    found: dict[str, set[str]] = {}
    for path, target in signed.items():
        info = parse_os_target(path, target.unrecognized_fields)
        for component, digest in info.measurements:
            found.setdefault(component, set()).add(digest)
    return found
