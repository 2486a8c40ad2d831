"""Publishing through the fleet server: fetch a role, edit and sign it offline, upload.

Every function takes an :class:`ApiClient` logged in as a publisher and a
:class:`Workspace` holding the offline keys; the server checks everything it
is sent (:mod:`edgeward.trust.publication`) and signs only snapshot and timestamp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tuf.api.metadata import Key, Metadata, Root, Snapshot, TargetFile, Targets, Timestamp

from edgeward.api_client import ApiClient
from edgeward.errors import InputError
from edgeward.files import write_atomic
from edgeward.release import roles
from edgeward.release.osbuild import Build
from edgeward.release.workspace import Workspace
from edgeward.trust import keys, publication
from edgeward.trust.targets import (
    OS_ROLE,
    OsTarget,
    delta_path,
    kernel_path,
    rootfs_path,
    tenant_role,
)
from edgeward.trust.tufkeys import tuf_key

Progress = Callable[[int], None]


def fetch(client: ApiClient, role: str) -> Metadata[Any]:
    return publication.parse(client.get_bytes(f"/v1/repository/metadata/{role}"), role)


def upload_role(client: ApiClient, role: str, md: Metadata[Any],
                query: list[tuple[str, str]] | None = None) -> int:
    path = f"/v1/repository/metadata/{role}"
    if query:
        path += "?" + urlencode(query)
    return int(client.put_bytes(path, md.to_bytes())["version"])


def upload_file(client: ApiClient, path: Path, progress: Progress | None = None
                ) -> TargetFile:
    target = TargetFile.from_file(path.name, str(path), [publication.HASH])
    client.upload(f"/v1/repository/blobs/{target.hashes[publication.HASH]}", path, progress)
    return target


def online_key(entry: dict[str, Any]) -> Key:
    body = {k: v for k, v in entry.items() if k != "keyid"}
    return Key.from_dict(str(entry["keyid"]), body)


def init_repository(client: ApiClient, ws: Workspace, now: dt.datetime) -> Metadata[Root]:
    online = client.call("GET", "/v1/repository/online-keys")
    root_keys = [ws.new_key(name) for name in ws.root_keys]
    targets_key, os_key = ws.new_key("targets"), ws.new_key(OS_ROLE)
    root, targets, os_md = roles.initial(
        root_keys, ws.threshold, targets_key, os_key,
        {role: online_key(online[role]) for role in (Snapshot.type, Timestamp.type)}, now)
    client.call("POST", "/v1/repository/init", {
        "root": root.to_bytes().decode(), "targets": targets.to_bytes().decode(),
        "delegated": {OS_ROLE: os_md.to_bytes().decode()}})
    write_atomic(ws.root_json, root.to_bytes())
    return root


@dataclass(frozen=True)
class Published:
    model: str
    version: str
    channel: str
    security_version: int
    targets: dict[str, int]  # path -> length
    role_version: int


def publish_os(client: ApiClient, ws: Workspace, build: Build, channel: str,
               now: dt.datetime, progress: Progress | None = None,
               stages: list[str] | None = None, error_threshold: int = 20) -> Published:
    """Upload a build and sign it into the os role; the server starts its rollout in the
    same step (``stages`` such as ``["10%", "acme/lobby", "100%"]``; default staged)."""
    info = build.info()
    model, version, svn = str(info["model"]), str(info["version"]), int(info["security_version"])
    current: Metadata[Targets] = fetch(client, OS_ROLE)
    roles.check_model(current, model, version)
    measured = tuple(sorted((str(k), str(v)) for k, v in dict(info["measurements"]).items()))
    files: dict[str, tuple[TargetFile, OsTarget | None]] = {}
    kernel = upload_file(client, build.kernel, progress)
    files[kernel_path(model, version)] = (
        kernel, OsTarget("kernel", model, version, channel, svn, measurements=measured,
                         tpm_policy=str(info.get("tpm_policy", ""))))
    rootfs = upload_file(client, build.rootfs, progress)
    files[rootfs_path(model, version)] = (rootfs, OsTarget("rootfs", model, version,
                                                           channel, svn))
    delta_info = info.get("delta")
    delta = build.delta()
    if isinstance(delta_info, dict) and delta is not None:
        base = str(delta_info["base_version"])
        files[delta_path(model, version, base)] = (upload_file(client, delta, progress), OsTarget(
            "rootfs-delta", model, version, channel, svn, base,
            str(delta_info["base_sha384"]), rootfs_path(model, version)))
    for path, (target, _) in files.items():
        target.path = path
    md = roles.add_targets(current, files, ws.key(OS_ROLE), now)
    query = [("stage", s) for s in stages or []] + [("error_threshold", str(error_threshold))]
    version_no = upload_role(client, OS_ROLE, md, query)
    return Published(model, version, channel, svn,
                     {p: t.length for p, (t, _) in files.items()}, version_no)


def promote(client: ApiClient, ws: Workspace, model: str, version: str, channel: str,
            now: dt.datetime) -> int:
    md = roles.promote(fetch(client, OS_ROLE), model, version, channel, ws.key(OS_ROLE), now)
    return upload_role(client, OS_ROLE, md)


def add_tenant(client: ApiClient, ws: Workspace, tenant: str, public: keys.PublicKey | None,
               now: dt.datetime) -> str:
    """Delegate ``apps/<tenant>/*`` to the tenant's key (made here unless given)."""
    role = tenant_role(tenant)
    key = None
    if public is None:
        key = ws.new_key(role)
        public = key.public_key()
    else:
        write_atomic(ws.root / "keys" / f"{role}.pub", keys.public_pem(public))
    targets = roles.delegate(fetch(client, Targets.type), role, [public], ws.key("targets"),
                             now)
    upload_role(client, Targets.type, targets)
    if key is not None:
        upload_role(client, role, roles.empty_role(key, now))
    return role


def rotate(client: ApiClient, ws: Workspace, role: str, now: dt.datetime) -> dict[str, Any]:
    """Replace ``role``'s key(s) and publish what that takes; returns the new key ids."""
    root: Metadata[Root] = fetch(client, Root.type)
    old_roots = ws.roots()
    if role == Root.type:
        new_roots = [ws.new_key(name) for name in ws.root_keys]
        new_root = roles.rotate_root(root, old_roots, new_roots, ws.threshold, now)
        upload_role(client, Root.type, new_root)
        write_atomic(ws.root_json, new_root.to_bytes())
        return {"root": [keys.keyid(k.public_key()) for k in new_roots]}
    if role in (Snapshot.type, Timestamp.type):
        pending = client.call("POST", f"/v1/repository/online-keys/{role}/rotate")
        new_root = roles.rotate_root(root, old_roots, old_roots, ws.threshold, now,
                                     {role: [online_key(pending)]})
        upload_role(client, Root.type, new_root)
        write_atomic(ws.root_json, new_root.to_bytes())
        return {role: [pending["keyid"]]}
    if role == Targets.type:
        current = fetch(client, Targets.type)
        key = ws.new_key("targets")
        new_root = roles.rotate_root(root, old_roots, old_roots, ws.threshold, now,
                                     {Targets.type: [tuf_key(key.public_key())]})
        upload_role(client, Root.type, new_root)
        write_atomic(ws.root_json, new_root.to_bytes())
        upload_role(client, Targets.type, roles.resign(current, [key], now,
                                                       roles.TARGETS_LIFETIME))
        return {"targets": [keys.keyid(key.public_key())]}
    if role == OS_ROLE or role.startswith("apps-"):
        current = fetch(client, role)
        key = ws.new_key(role)
        upload_role(client, Targets.type, roles.delegate(
            fetch(client, Targets.type), role, [key.public_key()], ws.key("targets"), now))
        upload_role(client, role, roles.resign(current, [key], now,
                                               roles.DELEGATED_LIFETIME))
        return {role: [keys.keyid(key.public_key())]}
    raise InputError(f"no role {role!r}: root, targets, snapshot, timestamp, os, apps-<tenant>")
