"""Installed apps on the data area: revisions side by side, each mounted read-only.

::

    /data/edgeward/apps/<app>/<version>/image.squashfs   checked against its TUF target
    /data/edgeward/apps/<app>/<version>/root/            the image, mounted ro,nodev,nosuid
    /data/edgeward/apps/<app>/current  -> <version>      switched atomically (rename)
    /data/edgeward/apps/<app>/previous -> <version>      kept for rollback
    /data/edgeward/apps/<app>/data/                      the app's one writable directory

An image is mounted only after TUF vouched for every byte of it, and only if
its own manifest is the app, version and publisher the signed target names.
Installing a third revision removes the oldest; removing an app unmounts and
deletes all of it.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgeward.board import mounts
from edgeward.board.base import Board
from edgeward.device.storage import volume
from edgeward.device.updates.client import TufClient
from edgeward.device.updates.fetcher import download
from edgeward.errors import IntegrityError, NotFound, StateError
from edgeward.files import private_dir, sha384_file, traversable_dir, write_atomic
from edgeward.trust.appmanifest import MANIFEST, AppManifest, parse
from edgeward.trust.targets import app_path, check_name, parse_app_target

IMAGE = "image.squashfs"
DIGEST = "image.sha384"  # as TUF vouched for it at install: checked again at each mount
HASH = "sha384"
# names beside the revisions in an app's folder: never a version (an app writes in some
# of them, and a revision's folder is written by root)
RESERVED = frozenset({"data", "logs", "run", "current", "previous", "grants.json",
                      "profile.json", "stopped", "image.sha384"})


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    root: Path  # the mounted image
    data: Path
    manifest: AppManifest


def apps_dir(board: Board) -> Path:
    """The apps' folders on the data area, each encrypted under its app's own key
    (device/storage/volume.py). Passable (0711) down to each app, so its unprivileged
    sandbox can reach what it is given; an app's data directory is its user's alone."""
    board.data_dir  # noqa: B018 (refuses while the data area is locked)
    return traversable_dir(board.data_mount / volume.APPS)


def state_dir(board: Board) -> Path:
    """What the agent keeps about all apps (their users, what runs): in its own folder."""
    return private_dir(board.data_dir / "edgeward" / "apps")


def mounted(path: Path) -> bool:
    return os.path.ismount(path)


def mount(image: Path, root: Path) -> None:
    root.mkdir(mode=0o755, exist_ok=True)
    mounts.mount(image, root, "squashfs", "loop,ro,nodev,nosuid")


def unmount(root: Path) -> None:
    if mounted(root):
        mounts.run("umount", str(root), timeout=60)


def install(board: Board, tuf: TufClient, tenant: str, name: str, version: str) -> Installed:
    """Fetch through TUF, check, mount, and make ``version`` the current revision."""
    if version in RESERVED:
        raise IntegrityError(f"{name} {version}: {version!r} is reserved on the gateway, "
                             "not a version it installs")
    target = tuf.target(app_path(tenant, name, version))
    info = parse_app_target(target.path, target.unrecognized_fields)
    if (info.publisher, info.name, info.version) != (tenant, name, version):
        raise IntegrityError(f"target {target.path} describes another app")
    folder = traversable_dir(volume.app_dir(board, check_name(name, "app")) / version)
    image = folder / IMAGE
    if not image.exists():
        part = folder / (IMAGE + ".part")
        download(tuf.fetcher.http, tuf.url(target), part, target.length)
        try:
            tuf.verify(target, part)
        except IntegrityError:
            part.unlink(missing_ok=True)
            raise
        part.rename(image)
    else:
        tuf.verify(target, image)  # what is on the data area is checked again
    digest = target.hashes.get(HASH, "")
    write_atomic(folder / DIGEST, f"{digest}\n".encode(), mode=0o600)
    root = folder / "root"
    mount(image, root)
    try:
        manifest = parse((root / MANIFEST).read_bytes())
        if (manifest.publisher, manifest.name, manifest.version) != (tenant, name, version):
            raise IntegrityError(f"{name} {version}: the image's own manifest says "
                                 f"{manifest.publisher}/{manifest.name} {manifest.version}")
    except Exception:
        unmount(root)
        raise
    switch(board, name, version)
    return current(board, name)


def switch(board: Board, name: str, version: str) -> None:
    """Make ``version`` current (atomically), keep the one before as previous, drop the
    rest."""
    base = apps_dir(board) / name
    if not (base / version / "root").is_dir():
        raise NotFound(f"{name} {version} is not installed")
    old = _link(base / "current")
    if old == version:
        return
    _point(base / "current", version)
    if old:
        _point(base / "previous", old)
    keep = {version, old}
    for child in base.iterdir():
        if (child.is_dir() and not child.is_symlink() and child.name not in keep
                and child.name not in RESERVED):
            unmount(child / "root")
            shutil.rmtree(child)


def rollback(board: Board, name: str) -> str:
    base = apps_dir(board) / name
    previous = _link(base / "previous")
    if not previous:
        raise StateError(f"{name} has no previous revision to roll back to")
    current_version = _link(base / "current")
    _point(base / "current", previous)
    _point(base / "previous", current_version)
    return previous


def current(board: Board, name: str) -> Installed:
    base = apps_dir(board) / name
    version = _link(base / "current")
    if not version:
        raise NotFound(f"app {name} is not installed")
    root = base / version / "root"
    data = base / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    try:
        return Installed(name, version, root, data, parse((root / MANIFEST).read_bytes()))
    except OSError as e:
        raise StateError(f"{name} {version} is not mounted (after a reboot the agent "
                         "mounts it again, once its image checks out)") from e


def remount(board: Board, name: str) -> list[str]:
    """Mount the current and previous revisions again (after a power cycle), each only if
    its image still has the digest TUF vouched for at install; the versions mounted."""
    base = apps_dir(board) / name
    done = []
    for link in ("current", "previous"):
        version = _link(base / link)
        folder = base / version
        if not version or mounted(folder / "root"):
            continue
        try:
            expected = (folder / DIGEST).read_text().strip()
        except OSError as e:
            raise IntegrityError(f"{name} {version}: no record of its signed digest: "
                                 "install it again") from e
        if not expected or not hmac.compare_digest(sha384_file(folder / IMAGE), expected):
            raise IntegrityError(f"{name} {version}: its image on the data area no longer "
                                 "matches what TUF vouched for: not mounted")
        mount(folder / IMAGE, folder / "root")
        done.append(version)
    return done


def remove(board: Board, name: str) -> None:
    base = apps_dir(board) / name
    if not base.exists():
        raise NotFound(f"app {name} is not installed")
    for child in base.iterdir():
        if child.is_dir() and not child.is_symlink():
            unmount(child / "root")
    shutil.rmtree(base)
    volume.forget_app(board, name)  # what was under its key is ciphertext now


def installed(board: Board) -> list[str]:
    return sorted(p.name for p in apps_dir(board).iterdir()
                  if not p.name.startswith(".") and (p / "current").is_symlink())


def _link(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError, OSError):
        return os.readlink(path)
    return ""


def _point(link: Path, version: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version)
    os.replace(tmp, link)  # a rename: the link is the old target or the new, never neither
