"""Installing an OS release into the inactive slot, through TUF.

1. Look up the kernel and rootfs targets through TUF and check their signed
   custom fields: this model, the version asked for, a security version not
   below the fused counter (no downgrades).
2. Download (resuming) into the data area; a delta only when the booted slot's
   rootfs is exactly its base, rebuilt and then checked against the full
   rootfs target; TUF checks length and SHA-384 of what is kept.
3. Write the inactive slot and verify what was written as BL2 and the kernel
   will at boot: the bundle's signature and security version, the rootfs
   against its signed hash tree.
4. Stage it with try-boot; the caller reboots.
"""

from __future__ import annotations

import base64
import binascii
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuf.api.metadata import TargetFile

from edgeward.board.base import Board, kernel_partition, policy_partition, rootfs_partition
from edgeward.board.bootenv import BootEnv, other
from edgeward.device.boot.slots import stage_try
from edgeward.device.updates import delta as deltas
from edgeward.device.updates.client import TufClient
from edgeward.device.updates.fetcher import download
from edgeward.device.updates.state import work_dir
from edgeward.errors import Error, IntegrityError, RollbackError, StateError
from edgeward.files import sha384_file
from edgeward.trust.hashtree import verify_all
from edgeward.trust.manifest import (
    KernelBundle,
    peek_bl2,
    peek_kernel_bundle,
    verify_kernel_bundle,
)
from edgeward.trust.targets import OsTarget, kernel_path, parse_os_target, rootfs_path

Progress = Callable[[str, int], None]  # phase, percent


@dataclass(frozen=True)
class Plan:
    model: str
    version: str
    security_version: int
    kernel: TargetFile
    rootfs: TargetFile
    delta: TargetFile | None
    delta_info: OsTarget | None
    tpm_policy: bytes = b""  # the vendor's approval of its boot, for gateways with a TPM


def model_of(board: Board) -> str:
    image = board.read("bl2")
    if image is None:
        raise StateError("no BL2 on this board")
    return peek_bl2(image).model


def plan(tuf: TufClient, board: Board, version: str, delta_path: str | None) -> Plan:
    """What TUF says release ``version`` is, checked against this board."""
    model = model_of(board)
    kernel = tuf.target(kernel_path(model, version))
    rootfs = tuf.target(rootfs_path(model, version))
    info = parse_os_target(kernel.path, kernel.unrecognized_fields)
    root_info = parse_os_target(rootfs.path, rootfs.unrecognized_fields)
    if (info.model, info.version, info.kind, root_info.kind) != (model, version, "kernel",
                                                                  "rootfs"):
        raise IntegrityError(f"targets of {version} do not describe a {model} release")
    fused = board.fuses().os_security_version
    if info.security_version < fused:
        raise RollbackError(f"release {version} has security version {info.security_version}, "
                            f"below the fused {fused}: downgrade refused")
    delta, delta_info = None, None
    if delta_path is not None:
        delta = tuf.target(delta_path)
        delta_info = parse_os_target(delta.path, delta.unrecognized_fields)
        if delta_info.kind != "rootfs-delta" or delta_info.full != rootfs.path:
            delta, delta_info = None, None
    try:
        policy = base64.b64decode(info.tpm_policy, validate=True)
    except (binascii.Error, ValueError) as e:
        raise IntegrityError(f"target {kernel.path}: tpm_policy is not base64") from e
    return Plan(model, version, info.security_version, kernel, rootfs, delta, delta_info,
                policy)


def _fetch(tuf: TufClient, target: TargetFile, dest: Path, progress: Progress,
           phase: str = "downloading") -> Path:
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        try:
            tuf.verify(target, dest)
            return dest
        except IntegrityError:
            dest.unlink()
    last = [-1]

    def step(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent >= last[0] + 25 or done == total:
            last[0] = percent
            progress(phase, percent)

    download(tuf.fetcher.http, tuf.url(target), part, target.length, step)
    try:
        tuf.verify(target, part)
    except IntegrityError:
        part.unlink(missing_ok=True)  # never keep bytes that are not what is signed
        raise
    part.rename(dest)
    return dest


def fetch(tuf: TufClient, board: Board, release: Plan, booted_slot: str,
          progress: Progress) -> tuple[Path, Path, str]:
    """Kernel and rootfs files on the data area, TUF-verified; and how the rootfs came."""
    folder = work_dir(board) / release.version
    folder.mkdir(mode=0o700, exist_ok=True)
    kernel = _fetch(tuf, release.kernel, folder / "kernel.img", progress)
    rootfs = folder / "rootfs.img"
    if not rootfs.exists() and release.delta is not None and release.delta_info is not None:
        base = board.partition_path(rootfs_partition(booted_slot))
        if (base.exists() and deltas.affordable(base)
                and sha384_file(base) == release.delta_info.base_sha384):
            rebuilt = folder / "rootfs.img.rebuilt"
            try:
                patch = _fetch(tuf, release.delta, folder / "rootfs.delta.zst", progress)
                booted = peek_kernel_bundle(board.read(kernel_partition(booted_slot)) or b"")
                new = peek_kernel_bundle(kernel.read_bytes())  # TUF-verified above
                deltas.rebuild(base, booted.rootfs.data_size, patch, new.rootfs, rebuilt)
                tuf.verify(release.rootfs, rebuilt)
                rebuilt.rename(rootfs)
                return kernel, rootfs, f"delta from {release.delta_info.base_version}"
            except Error:
                rebuilt.unlink(missing_ok=True)  # the full image it is
    return kernel, _fetch(tuf, release.rootfs, rootfs, progress), "full image"


def write_and_verify(board: Board, env: BootEnv, kernel: Path, rootfs: Path, version: str,
                     progress: Progress, tpm_policy: bytes = b"") -> str:
    """Write the slot not holding the committed release, then verify it from flash (and
    that the bundle is the release ``version`` it was published as)."""
    committed = other(env.active) if env.try_boot else env.active
    slot = other(committed)
    progress("writing", 0)
    board.write(kernel_partition(slot), kernel)
    board.write(rootfs_partition(slot), rootfs)
    board.write(policy_partition(slot), tpm_policy)  # none: a TPM will not open /data on it
    progress("verifying", 0)
    bundle = verify_slot(board, slot)
    if bundle.version != version:
        raise IntegrityError(f"slot {slot}: the kernel bundle is release {bundle.version}, "
                             f"published as {version}: refused")
    return slot


def verify_slot(board: Board, slot: str) -> KernelBundle:
    """The slot as BL2 and the kernel will check it at boot (IntegrityError if not)."""
    bl2 = peek_bl2(board.read("bl2") or b"")
    image = board.read(kernel_partition(slot))
    if image is None:
        raise IntegrityError(f"kernel slot {slot} is empty after writing")
    bundle = verify_kernel_bundle(image, bl2.kernel_keys, board.fuses().os_security_version)
    if bundle.model != bl2.model:
        raise IntegrityError(f"slot {slot}: kernel bundle is for {bundle.model}")
    with board.reader(rootfs_partition(slot)) as source:
        if source is None or source[1] != bundle.rootfs_size:
            raise IntegrityError(f"rootfs slot {slot} is not the size the bundle signs")
        verify_all(source[0], bundle.rootfs)
    return bundle


def stage(board: Board, slot: str) -> None:
    env = board.read_env()
    if env is None:
        raise StateError("no boot environment")
    board.write_env(stage_try(env, slot))


def clean(board: Board, keep: str = "") -> None:
    for folder in work_dir(board).iterdir():
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)
