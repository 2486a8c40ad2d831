"""Offline edits of TUF metadata: the first root and targets, OS releases, tenants,
promotion between channels, key rotation. Metadata in, signed metadata out.

Signing happens here, on the publisher's machine, with offline keys; the fleet
server checks and serves what comes out but could not have made it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Key,
    Metadata,
    Root,
    TargetFile,
    Targets,
)

from edgeward.errors import InputError, ManifestError, NotFound
from edgeward.trust import keys, publication
from edgeward.trust.targets import (
    CHANNELS,
    OS_PATHS,
    OS_ROLE,
    OsTarget,
    parse_os_target,
    tenant_paths,
    tenant_role,
)
from edgeward.trust.tufkeys import signer, tuf_key

ROOT_LIFETIME = dt.timedelta(days=365)
TARGETS_LIFETIME = dt.timedelta(days=365)
DELEGATED_LIFETIME = dt.timedelta(days=90)


def _expiry(now: dt.datetime, lifetime: dt.timedelta) -> dt.datetime:
    return (now + lifetime).replace(microsecond=0)


def _sign(md: Metadata[Any], signers: Iterable[keys.PrivateKey]) -> Metadata[Any]:
    md.signatures.clear()
    for key in signers:
        md.sign(signer(key), append=True)
    return md


def initial(root_keys: list[keys.PrivateKey], threshold: int, targets_key: keys.PrivateKey,
            os_key: keys.PrivateKey, online: Mapping[str, Key], now: dt.datetime
            ) -> tuple[Metadata[Root], Metadata[Targets], Metadata[Targets]]:
    """Root v1 (``threshold`` of ``root_keys``), targets v1 delegating ``os/*``, os v1."""
    if not 1 <= threshold <= len(root_keys):
        raise InputError(f"a threshold of {threshold} needs at least that many root keys")
    root = Root(expires=_expiry(now, ROOT_LIFETIME), consistent_snapshot=True)
    for key in root_keys:
        root.add_key(tuf_key(key.public_key()), Root.type)
    root.roles[Root.type].threshold = threshold
    root.add_key(tuf_key(targets_key.public_key()), Targets.type)
    for role in publication.ONLINE:
        root.add_key(online[role], role)
    targets = Targets(expires=_expiry(now, TARGETS_LIFETIME))
    targets.delegations = Delegations(keys={}, roles={})
    _delegate(targets, OS_ROLE, OS_PATHS, [os_key.public_key()])
    os_role = Targets(expires=_expiry(now, DELEGATED_LIFETIME))
    return (_sign(Metadata(root), root_keys), _sign(Metadata(targets), [targets_key]),
            _sign(Metadata(os_role), [os_key]))


def _delegate(targets: Targets, role: str, paths: list[str],
              publics: list[keys.PublicKey]) -> None:
    assert targets.delegations is not None and targets.delegations.roles is not None
    old = targets.delegations.roles.get(role)
    if old is not None:
        for keyid in list(old.keyids):
            targets.revoke_key(keyid, role)
    else:
        targets.delegations.roles[role] = DelegatedRole(role, [], 1, True, paths)
    for public in publics:
        targets.add_key(tuf_key(public), role)


def delegate(targets_md: Metadata[Targets], role: str, publics: list[keys.PublicKey],
             targets_key: keys.PrivateKey, now: dt.datetime) -> Metadata[Targets]:
    """Next targets version, with ``role`` (os or apps-<tenant>) delegated to ``publics``."""
    paths = OS_PATHS if role == OS_ROLE else tenant_paths(role.removeprefix("apps-"))
    if role != OS_ROLE:
        tenant_role(role.removeprefix("apps-"))
    md = _next(targets_md, now, TARGETS_LIFETIME)
    if md.signed.delegations is None:
        md.signed.delegations = Delegations(keys={}, roles={})
    _delegate(md.signed, role, paths, publics)
    return _sign(md, [targets_key])


def _next(md: Metadata[Any], now: dt.datetime, lifetime: dt.timedelta) -> Metadata[Any]:
    copy: Metadata[Any] = Metadata.from_bytes(md.to_bytes())
    copy.signed.version += 1
    copy.signed.expires = _expiry(now, lifetime)
    return copy


def empty_role(key: keys.PrivateKey, now: dt.datetime) -> Metadata[Targets]:
    return _sign(Metadata(Targets(expires=_expiry(now, DELEGATED_LIFETIME))), [key])


def add_targets(role_md: Metadata[Targets] | None, files: Mapping[str, tuple[TargetFile,
                OsTarget | None]], key: keys.PrivateKey, now: dt.datetime
                ) -> Metadata[Targets]:
    """Next version of a delegated role with ``files`` added (or replaced)."""
    md = _next(role_md, now, DELEGATED_LIFETIME) if role_md else Metadata(
        Targets(expires=_expiry(now, DELEGATED_LIFETIME)))
    for path, (target, info) in files.items():
        if info is not None:
            target.unrecognized_fields = info.custom()
        md.signed.targets[path] = target
    return _sign(md, [key])


def promote(os_md: Metadata[Targets], model: str, version: str, channel: str,
            key: keys.PrivateKey, now: dt.datetime) -> Metadata[Targets]:
    """Next os version with every target of ``model`` ``version`` moved to ``channel``."""
    if channel not in CHANNELS:
        raise InputError(f"channel {channel!r}: one of {', '.join(CHANNELS)}")
    md = _next(os_md, now, DELEGATED_LIFETIME)
    moved = 0
    for path, target in md.signed.targets.items():
        info = parse_os_target(path, target.unrecognized_fields)
        if info.model == model and info.version == version:
            body = dict(target.unrecognized_fields["edgeward"])
            body["channel"] = channel
            target.unrecognized_fields = {"edgeward": body}
            moved += 1
    if not moved:
        raise NotFound(f"no release {model} {version} is published")
    return _sign(md, [key])


def releases(os_md: Metadata[Targets]) -> list[OsTarget]:
    """The kernel target of every release (one per release), oldest version first."""
    found = [parse_os_target(p, t.unrecognized_fields) for p, t in os_md.signed.targets.items()]
    return [t for t in found if t.kind == "kernel"]


def rotate_root(root_md: Metadata[Root], old_keys: list[keys.PrivateKey],
                new_keys: list[keys.PrivateKey], threshold: int, now: dt.datetime,
                replace: Mapping[str, list[Key]] | None = None) -> Metadata[Root]:
    """Next root: root keys replaced by ``new_keys`` (threshold ``threshold``) and any
    other role's keys by ``replace``; signed by the old keys *and* the new ones, so a
    client that trusts the old root accepts it and it satisfies itself."""
    md: Metadata[Root] = _next(root_md, now, ROOT_LIFETIME)
    root = md.signed
    changes: dict[str, list[Key]] = {Root.type: [tuf_key(k.public_key()) for k in new_keys]}
    changes.update(replace or {})
    for role, new in changes.items():
        for keyid in list(root.roles[role].keyids):
            root.revoke_key(keyid, role)
        for key in new:
            root.add_key(key, role)
    if not 1 <= threshold <= len(new_keys):
        raise InputError(f"a threshold of {threshold} needs at least that many root keys")
    root.roles[Root.type].threshold = threshold
    signing = {keys.keyid(k.public_key()): k for k in [*old_keys, *new_keys]}
    return _sign(md, list(signing.values()))


def resign(md: Metadata[Any], signers: list[keys.PrivateKey], now: dt.datetime,
           lifetime: dt.timedelta) -> Metadata[Any]:
    """Next version, same content, signed by ``signers`` (after a key rotation)."""
    return _sign(_next(md, now, lifetime), signers)


def check_model(os_md: Metadata[Targets], model: str, version: str) -> None:
    for info in releases(os_md):
        if info.model == model and info.version == version:
            raise ManifestError(f"release {model} {version} is already published: "
                                "versions are immutable, publish a new one")
