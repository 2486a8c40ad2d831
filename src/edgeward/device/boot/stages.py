"""The four boot stages. Each verifies and measures the next, or refuses.

A stage raises :class:`BootRefused` naming itself; the chain stops there and
nothing after it runs. Verification itself is delegated to the pure checks in
:mod:`edgeward.trust`; what is here is reading the board and deciding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeward.board.base import Board, kernel_partition, rootfs_partition
from edgeward.board.fuses import FuseState
from edgeward.device import keyring
from edgeward.device.boot.report import BootReport
from edgeward.device.boot.slots import choose_slot
from edgeward.device.storage import sealed, volume
from edgeward.errors import BootRefused, Error
from edgeward.trust.bootpolicy import FIRMWARE_PCR, OS_PCR
from edgeward.trust.hashtree import verify_all
from edgeward.trust.manifest import Bl2Manifest, KernelBundle, verify_bl2, verify_kernel_bundle
from edgeward.trust.measurement import COMPONENTS, Event, event_digest, os_state_digest


@dataclass
class Context:
    board: Board
    report: BootReport
    fuses: FuseState
    progress: Callable[[int, int], None] | None = None
    bl2: Bl2Manifest | None = None
    bundle: KernelBundle | None = None

    def measure(self, event: Event, pcr: int | None = None) -> None:
        """Extend the board's register (and the TPM's ``pcr``, where there is a TPM) and
        keep the event for the log."""
        self.board.extend_register(event_digest(event))
        if pcr is not None:
            sealed.measure(self.board, pcr, event_digest(event))
        self.report.measure(event)


def _refuse(stage: str, error: Error | str) -> BootRefused:
    return BootRefused(stage, error.message if isinstance(error, Error) else error)


def rom(ctx: Context) -> None:
    """Boot ROM: trust only a BL2 signed by the key whose hash is fused."""
    if "root_key_hash" not in ctx.fuses.locked:
        raise _refuse("rom", "no root key hash is fused: this board is not provisioned")
    image = ctx.board.read("bl2")
    if image is None:
        raise _refuse("rom", "the BL2 partition is empty")
    try:
        ctx.bl2 = verify_bl2(image, ctx.fuses.root_key_hash, ctx.fuses.security_version)
    except Error as e:
        raise _refuse("rom", e) from e
    ctx.report.versions["bl2"] = ctx.bl2.version
    ctx.measure(Event("rom", COMPONENTS["rom"], ctx.bl2.digest, ctx.bl2.version,
                      ctx.bl2.security_version, ctx.bl2.signer), FIRMWARE_PCR)


def bl2(ctx: Context) -> None:
    """BL2: pick the slot (A/B, try-boot), verify the kernel bundle with its embedded keys."""
    assert ctx.bl2 is not None
    env = ctx.board.read_env()
    if env is None:
        raise _refuse("bl2", "the boot environment is missing or corrupt in both copies")
    env, fallback = choose_slot(env)
    ctx.board.write_env(env)  # the try is counted before the kernel runs, as U-Boot does
    ctx.report.slot, ctx.report.fallback = env.active, fallback
    image = ctx.board.read(kernel_partition(env.active))
    if image is None:
        raise _refuse("bl2", f"kernel slot {env.active} is empty")
    try:
        ctx.bundle = verify_kernel_bundle(image, ctx.bl2.kernel_keys,
                                          ctx.fuses.os_security_version)
    except Error as e:
        raise _refuse("bl2", f"slot {env.active}: {e.message}") from e
    if ctx.bundle.model != ctx.bl2.model:
        raise _refuse("bl2", f"slot {env.active}: kernel bundle is for model "
                             f"{ctx.bundle.model!r}, this gateway is {ctx.bl2.model!r}")
    ctx.report.versions["kernel"] = ctx.bundle.version
    ctx.measure(Event("bl2", COMPONENTS["bl2"], ctx.bundle.digest, ctx.bundle.version,
                      ctx.bundle.security_version, ctx.bundle.signer), OS_PCR)


VERITY_ROOT = "/dev/dm-0"  # the initrd maps the verity device; only it may be root


def kernel(ctx: Context) -> None:
    """Kernel (initrd): mount only the verity root, verified against the signed root hash."""
    assert ctx.bundle is not None
    slot, params = ctx.report.slot, ctx.bundle.rootfs
    root = next((arg.partition("=")[2] for arg in ctx.bundle.cmdline.split()
                 if arg.startswith("root=")), "")
    if root != VERITY_ROOT:
        # what a kernel does with a root it cannot mount: panic (and the watchdog resets)
        raise _refuse("kernel", f"slot {slot}: VFS: unable to mount root fs on "
                                f"{root or '(none)'}: only the verity root {VERITY_ROOT} "
                                "is mounted")
    with ctx.board.reader(rootfs_partition(slot)) as source:
        if source is None:
            raise _refuse("kernel", f"rootfs slot {slot} is empty")
        read, size = source
        if size != ctx.bundle.rootfs_size:
            raise _refuse("kernel", f"rootfs slot {slot} is {size} bytes, the signed "
                                    f"manifest says {ctx.bundle.rootfs_size}")
        progress = ctx.progress

        def report(done: int) -> None:
            if progress is not None:
                progress(done, params.data_size)

        try:
            verify_all(read, params, report)
        except Error as e:
            raise _refuse("kernel", f"slot {slot}: {e.message}") from e
    ctx.report.versions["rootfs"] = ctx.bundle.version
    ctx.measure(Event("kernel", COMPONENTS["kernel"], params.root_hash.hex(),
                      ctx.bundle.version, ctx.bundle.security_version, ctx.bundle.signer),
                OS_PCR)


def os_stage(ctx: Context) -> None:
    """OS stage: refuse an open debug port, open the boot-bound keys, lock the HUK."""
    try:
        _open_keys(ctx)
    finally:
        ctx.board.lock_huk()  # close the door behind us, whatever happened
        sealed.close_door(ctx.board)  # and the TPM's: nothing later unseals again
    assert ctx.bundle is not None
    ctx.measure(Event("os", COMPONENTS["os"],
                      os_state_digest(True, ctx.board.huk_locked(), "unsealed"),
                      ctx.bundle.version, ctx.bundle.security_version, ""))


def _open_keys(ctx: Context) -> None:
    if not ctx.fuses.debug_disable:
        raise _refuse("os", "the debug port is open (debug_disable fuse not burnt): "
                            "a production OS does not run on it")
    assert ctx.bundle is not None
    fused = ctx.fuses.os_security_version
    in_tpm = sealed.holds_volume_key(ctx.board)
    try:
        kek = keyring.derive(ctx.board, fused)
        opened = {name: keyring.unseal(ctx.board, kek, name) for name in keyring.BOOT_BOUND
                  if not (in_tpm and name == keyring.DATA_VOLUME)}
        if in_tpm:
            assert ctx.bl2 is not None
            opened[keyring.DATA_VOLUME] = sealed.unseal_volume_key(
                ctx.board, ctx.report.slot, ctx.bundle, ctx.bl2.kernel_keys)
        if ctx.bundle.security_version > fused:  # a security update's trial: seal forward
            ahead = keyring.derive(ctx.board, ctx.bundle.security_version)
            for name, secret in opened.items():
                if not (in_tpm and name == keyring.DATA_VOLUME):  # the TPM needs no reseal
                    keyring.seal(ctx.board, ahead, name, secret, replace=True)
        keyring.prune(ctx.board, below=fused)
    except Error as e:
        raise _refuse("os", f"the boot-bound keys do not open: {e.message} (not the board "
                            "they were sealed on, or its flash was altered)") from e
    try:
        volume.unlock(ctx.board, opened[keyring.DATA_VOLUME])
    except Error as e:
        raise _refuse("os", f"the data area does not open: {e.message}") from e
    for name, secret in opened.items():
        keyring.remember(ctx.board, name, secret)


STAGES: tuple[tuple[str, Callable[[Context], None], str], ...] = (
    ("rom", rom, "BL2 signed by the fused root key"),
    ("bl2", bl2, "kernel bundle signed by a key BL2 trusts"),
    ("kernel", kernel, "rootfs matches the signed hash tree"),
    ("os", os_stage, "debug closed, data area unlocked, HUK locked"),
)
