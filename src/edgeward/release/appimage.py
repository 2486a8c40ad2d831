"""``edgeward app build``: an app directory into a signed-to-be, read-only squashfs.

The directory holds ``app.toml`` and the app's files. The build refuses a
manifest that does not parse, a command whose program is not an executable
file in the image (or leaves it), and any hard-coded credential; otherwise it
makes a reproducible squashfs (fixed times, root-owned, no xattrs, no devices)
named ``<name>_<version>.squashfs``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import InputError, ManifestError, SecurityError
from edgeward.files import read_file, sha384_file
from edgeward.release.credscan import scan_tree
from edgeward.release.rootfs import mksquashfs
from edgeward.trust.appmanifest import MANIFEST, AppManifest, parse

MAX_FINDINGS_SHOWN = 5


class CredentialsFound(SecurityError):
    """The image would carry a hard-coded credential."""


@dataclass(frozen=True)
class AppImage:
    path: Path
    manifest: AppManifest
    sha384: str
    size: int


def check_tree(source: Path, manifest: AppManifest) -> None:
    for program in manifest.programs:
        exe = source / program.argv[0]
        try:
            resolved = exe.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            raise ManifestError(f"{program.name}: {program.argv[0]} is not in the app "
                                "directory") from None
        if not resolved.is_relative_to(source.resolve()):
            raise ManifestError(f"{program.name}: {program.argv[0]} leads out of the app")
        if not resolved.is_file() or not os.access(resolved, os.X_OK):
            raise ManifestError(f"{program.name}: {program.argv[0]} is not an executable "
                                "file")
    for path in source.rglob("*"):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            target = (path.parent / os.readlink(path)).resolve()
            if not target.is_relative_to(source.resolve()) and not os.readlink(
                    path).startswith("/"):
                raise ManifestError(f"{path.relative_to(source)}: a symlink leading out of "
                                    "the app")
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ManifestError(f"{path.relative_to(source)}: only files, directories and "
                                "symlinks go into an app")
        elif mode & (stat.S_ISUID | stat.S_ISGID):
            raise ManifestError(f"{path.relative_to(source)}: set-uid/set-gid files are "
                                "refused")


def build(source: Path, out_dir: Path) -> AppImage:
    if not (source / MANIFEST).is_file():
        raise InputError(f"{source} has no {MANIFEST}")
    manifest = parse(read_file(source / MANIFEST, MANIFEST))
    check_tree(source, manifest)
    findings = list(scan_tree(source))
    if findings:
        shown = "; ".join(str(f) for f in findings[:MAX_FINDINGS_SHOWN])
        more = len(findings) - MAX_FINDINGS_SHOWN
        raise CredentialsFound(f"hard-coded credentials refused: {shown}"
                               + (f" (+{more} more)" if more > 0 else "")
                               + "; deliver them with the secrets service instead")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{manifest.name}_{manifest.version}.squashfs"
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        mksquashfs(source, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return AppImage(out, manifest, sha384_file(out), out.stat().st_size)
