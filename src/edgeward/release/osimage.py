"""An OS release: BL2, a signed kernel bundle and a sealed rootfs, with the
known-good measurements a verifier accepts for them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgeward.files import write_atomic
from edgeward.release import rootfs
from edgeward.trust.bootpolicy import approve_release
from edgeward.trust.keys import PrivateKey
from edgeward.trust.manifest import (
    Bl2Manifest,
    KernelBundle,
    peek_bl2,
    peek_kernel_bundle,
    sign_bl2,
    sign_kernel_bundle,
    verify_kernel_bundle,
)
from edgeward.trust.measurement import COMPONENTS, HEALTHY_OS_STATE
from edgeward.trust.quote import KnownGood
from edgeward.trust.targets import TUF_ROOT

KERNEL_SIZE = 128 * 1024
INITRD_SIZE = 64 * 1024
CMDLINE = "root=/dev/dm-0 ro rootwait quiet dm-mod.waitfor=/dev/mmcblk0p5"


def _filler(label: bytes, version: str, size: int) -> bytes:
    # Stand-in bytes for the kernel and initrd the virtual gateway does not execute.
    head = b"EDGEWARD " + label + b" " + version.encode() + b"\n"
    return head + hashlib.shake_256(head).digest(size - len(head))


def make_bl2(version: str, security_version: int, model: str, kernel_keys: list[PrivateKey],
             root_key: PrivateKey) -> bytes:
    manifest = Bl2Manifest(version, security_version,
                           tuple(k.public_key() for k in kernel_keys),
                           _filler(b"BL2", version, 32 * 1024), model)
    return sign_bl2(manifest, root_key)


def make_kernel_bundle(version: str, security_version: int, model: str,
                       sealed: rootfs.SealedRootfs, kernel_key: PrivateKey,
                       cmdline: str = CMDLINE) -> bytes:
    bundle = KernelBundle(
        version=version, security_version=security_version, model=model, cmdline=cmdline,
        kernel=_filler(b"vmlinuz", version, KERNEL_SIZE),
        initrd=_filler(b"initrd", version, INITRD_SIZE),
        rootfs=sealed.params, rootfs_size=sealed.size,
    )
    return sign_kernel_bundle(bundle, kernel_key)


@dataclass(frozen=True)
class OsRelease:
    directory: Path

    @property
    def bl2(self) -> Path:
        return self.directory / "bl2.img"

    @property
    def kernel(self) -> Path:
        return self.directory / "kernel.img"

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs.img"

    @property
    def known_good(self) -> Path:
        return self.directory / "known-good.json"

    @property
    def tpm_policy(self) -> Path:
        """The approved TPM policy of this release's boot (trust/bootpolicy.py)."""
        return self.directory / "kernel.tpm-policy"


def write_tpm_policy(release: OsRelease, kernel: bytes, kernel_key: PrivateKey) -> bytes:
    """Approve the boot of ``kernel`` for gateways that seal /data in a TPM."""
    bundle = verify_kernel_bundle(kernel, (kernel_key.public_key(),), 0)
    policy = approve_release(kernel_key, bundle).encode()
    write_atomic(release.tpm_policy, policy)
    return policy




def build_release(directory: Path, version: str, security_version: int, model: str,
                  root_key: PrivateKey, kernel_key: PrivateKey,
                  tuf_root: bytes | None = None) -> OsRelease:
    """Build and sign a complete boot chain into ``directory``."""
    release = OsRelease(directory)
    extra = {TUF_ROOT: tuf_root} if tuf_root is not None else None
    sealed = rootfs.build(release.rootfs, version, model, security_version, extra)
    kernel = make_kernel_bundle(version, security_version, model, sealed, kernel_key)
    bl2 = make_bl2(version, security_version, model, [kernel_key], root_key)
    write_atomic(release.kernel, kernel)
    write_atomic(release.bl2, bl2)
    write_tpm_policy(release, kernel, kernel_key)
    known = KnownGood({
        COMPONENTS["rom"]: frozenset({peek_bl2(bl2).digest}),
        COMPONENTS["bl2"]: frozenset({peek_kernel_bundle(kernel).digest}),
        COMPONENTS["kernel"]: frozenset({sealed.params.root_hash.hex()}),
        COMPONENTS["os"]: frozenset({HEALTHY_OS_STATE}),
    })
    write_atomic(release.known_good, known.to_json())
    return release
