"""``edgeward release os build``: a kernel bundle + rootfs pair for an OS update,
and, given the release before it, a binary delta of the rootfs.

The rootfs carries the TUF root (the update client's trust anchor). A delta is
``zstd --patch-from`` of the new rootfs's squashfs data against the previous
one's; the hash tree is left out (it changes wherever a block moved, and would
cost ~1.2% of the image in every delta): the gateway rebuilds it from the data
and the salt its signed kernel bundle names, then checks the whole image
against the rootfs target's signed SHA-384.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeward.errors import InputError, ToolError
from edgeward.files import prefix_chunks, private_dir, read_file, sha384_file, write_atomic
from edgeward.release import osimage, rootfs
from edgeward.trust.canonical import canonical, load_object
from edgeward.trust.digest import sha384_hex
from edgeward.trust.keys import PrivateKey
from edgeward.trust.manifest import peek_kernel_bundle
from edgeward.trust.measurement import COMPONENTS
from edgeward.trust.targets import TUF_ROOT

ZSTD_LONG = "--long=31"  # windows up to 2 GiB: the whole base image is the dictionary


@dataclass(frozen=True)
class Build(osimage.OsRelease):
    """An update build: an :class:`OsRelease` without BL2, with release.json and a delta."""

    @property
    def info_path(self) -> Path:
        return self.directory / "release.json"

    def info(self) -> dict[str, Any]:
        return load_object(read_file(self.info_path, "release.json"), "release.json",
                           InputError)

    def delta(self) -> Path | None:
        found = sorted(self.directory.glob("rootfs.delta-*.zst"))
        return found[0] if found else None


def zstd() -> str:
    tool = shutil.which("zstd")
    if tool is None:
        raise ToolError("zstd not found (Debian package zstd): run scripts/bootstrap")
    return tool


def make_delta(base: Path, new: Path, out: Path) -> None:
    cmd = [zstd(), "-q", "-f", "-19", ZSTD_LONG, f"--patch-from={base}", str(new), "-o",
           str(out)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
    except subprocess.CalledProcessError as e:
        raise ToolError(f"zstd delta failed: {e.stderr.decode(errors='replace').strip()}") from e


def build(out: Path, version: str, security_version: int, model: str,
          kernel_key: PrivateKey, tuf_root: bytes, base: Path | None = None,
          tree: Path | None = None, files: dict[str, bytes] | None = None,
          cmdline: str = osimage.CMDLINE) -> Build:
    """Build, sign and describe one OS update in ``out`` (a new directory)."""
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not empty")
    private_dir(out)
    result = Build(out)
    salt = None
    base_info: dict[str, Any] | None = None
    if base is not None:
        base_build = Build(base)
        bundle = peek_kernel_bundle(read_file(base_build.kernel, "base kernel bundle"))
        salt = bundle.rootfs.salt
        base_info = {"version": bundle.version, "sha384": sha384_file(base_build.rootfs)}
    extra = {TUF_ROOT: tuf_root, **(files or {})}
    sealed = rootfs.build(result.rootfs, version, model, security_version, extra, tree, salt)
    kernel = osimage.make_kernel_bundle(version, security_version, model, sealed, kernel_key,
                                        cmdline)
    write_atomic(result.kernel, kernel)
    policy = osimage.write_tpm_policy(result, kernel, kernel_key)
    info: dict[str, Any] = {
        "tpm_policy": base64.b64encode(policy).decode(),
        "model": model, "version": version, "security_version": security_version,
        "measurements": {COMPONENTS["bl2"]: peek_kernel_bundle(kernel).digest,
                         COMPONENTS["kernel"]: sealed.params.root_hash.hex()},
        "rootfs_sha384": sha384_file(result.rootfs), "kernel_sha384": sha384_hex(kernel)}
    if base is not None and base_info is not None:
        delta = out / f"rootfs.delta-{base_info['version']}.zst"
        base_data = peek_kernel_bundle(read_file(Build(base).kernel, "base kernel")).rootfs
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            old, new = Path(tmp) / "base.data", Path(tmp) / "new.data"
            write_atomic(old, prefix_chunks(Build(base).rootfs, base_data.data_size))
            write_atomic(new, prefix_chunks(result.rootfs, sealed.params.data_size))
            make_delta(old, new, delta)
        info["delta"] = {"base_version": base_info["version"],
                         "base_sha384": base_info["sha384"], "file": delta.name,
                         "size": delta.stat().st_size}
    write_atomic(result.info_path, canonical(info) + b"\n")
    return result
