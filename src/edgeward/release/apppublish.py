"""``edgeward app publish``: an app image signed into its publisher's TUF role.

The image's own ``app.toml`` names the publisher (a tenant); the target is
``apps/<tenant>/<app>/<version>/<app>_<version>.squashfs`` in role
``apps-<tenant>``, signed with the tenant's key (held by the tenant, not the
platform). The fleet server checks the signature against the delegation and
refuses paths outside ``apps/<tenant>/``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeward.api_client import ApiClient
from edgeward.errors import NotFound, ToolError
from edgeward.release import roles
from edgeward.release.publish import Progress, fetch, upload_file, upload_role
from edgeward.trust.appmanifest import MANIFEST, AppManifest, parse
from edgeward.trust.keys import PrivateKey
from edgeward.trust.targets import AppTarget, app_path, tenant_role


@dataclass(frozen=True)
class PublishedApp:
    path: str
    length: int
    role: str
    role_version: int


def manifest_of(image: Path) -> AppManifest:
    """The manifest inside a built image."""
    tool = shutil.which("unsquashfs")
    if tool is None:
        raise ToolError("unsquashfs not found (Debian package squashfs-tools)")
    try:
        done = subprocess.run([tool, "-cat", str(image), MANIFEST], check=True,
                              capture_output=True, timeout=60)
    except subprocess.CalledProcessError as e:
        raise NotFound(f"{image} is not an app image (no {MANIFEST} inside)") from e
    return parse(done.stdout)


def publish_app(client: ApiClient, key: PrivateKey, image: Path, now: dt.datetime,
                progress: Progress | None = None) -> PublishedApp:
    manifest = manifest_of(image)
    role = tenant_role(manifest.publisher)
    target = upload_file(client, image, progress)
    target.path = app_path(manifest.publisher, manifest.name, manifest.version)
    target.unrecognized_fields = AppTarget(manifest.name, manifest.version,
                                           manifest.publisher).custom()
    try:
        current = fetch(client, role)
    except NotFound:
        current = None  # the tenant's first app
    md = roles.add_targets(current, {target.path: (target, None)}, key, now)
    return PublishedApp(target.path, target.length, role, upload_role(client, role, md))
