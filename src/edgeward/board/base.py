"""The Board interface: what edgeward needs of the hardware under it."""

from __future__ import annotations

import abc
import os
from contextlib import AbstractContextManager
from pathlib import Path

from edgeward.board.bootenv import BootEnv
from edgeward.board.fuses import FuseState
from edgeward.errors import StateError
from edgeward.trust.hashtree import Reader

PARTITIONS = ("bl2", "kernel_a", "kernel_b", "rootfs_a", "rootfs_b", "policy_a", "policy_b")


def kernel_partition(slot: str) -> str:
    return f"kernel_{slot}"


def rootfs_partition(slot: str) -> str:
    return f"rootfs_{slot}"


def policy_partition(slot: str) -> str:
    """The approved TPM policy of the release in ``slot`` (gateways with a TPM)."""
    return f"policy_{slot}"


class Board(abc.ABC):
    """Fuses, flash partitions, the boot environment, RAM that a power cycle clears."""

    # --- fuses (OTP) -------------------------------------------------------
    @abc.abstractmethod
    def fuses(self) -> FuseState: ...

    @abc.abstractmethod
    def burn(self, field: str, value: bytes) -> None:
        """Burn a write-once field (root_key_hash, huk, debug_disable)."""

    @abc.abstractmethod
    def advance_security_version(self, version: int, counter: str = "security_version"
                                 ) -> None:
        """Burn a monotonic counter up to ``version``: ``security_version`` (BL2's,
        checked by the ROM) or ``os_security_version`` (the OS's, checked by BL2)."""

    @abc.abstractmethod
    def read_huk(self) -> bytes:
        """The HUK, until :meth:`lock_huk` is called in this power cycle."""

    @abc.abstractmethod
    def lock_huk(self) -> None: ...

    @abc.abstractmethod
    def huk_locked(self) -> bool: ...

    # --- power ---------------------------------------------------------------
    @abc.abstractmethod
    def power_on(self) -> None:
        """Reset: clear RAM and the HUK lock; recover from interrupted writes."""

    @abc.abstractmethod
    def power_off(self) -> None:
        """Cut the power: RAM (and with it every opened key and mount) is gone."""

    # --- flash ---------------------------------------------------------------
    @abc.abstractmethod
    def read(self, partition: str) -> bytes | None: ...

    @abc.abstractmethod
    def reader(self, partition: str) -> AbstractContextManager[tuple[Reader, int] | None]:
        """A positional reader over a partition and its size (None if empty)."""

    @abc.abstractmethod
    def write(self, partition: str, data: bytes | Path) -> None:
        """Replace a partition atomically, from bytes or from a file streamed in."""

    @abc.abstractmethod
    def partition_path(self, partition: str) -> Path:
        """The device node (or file) behind a partition, for tools that take a path."""

    @abc.abstractmethod
    def read_env(self) -> BootEnv | None: ...

    @abc.abstractmethod
    def write_env(self, env: BootEnv) -> None: ...

    @property
    @abc.abstractmethod
    def data_partition(self) -> Path:
        """The data area's block device (an ext4 image with encryption on the virtual
        board): only ciphertext, as anyone who takes the flash out reads it."""

    @property
    @abc.abstractmethod
    def data_mount(self) -> Path:
        """Where the OS mounts the data area (``/data``)."""

    @property
    def data_dir(self) -> Path:
        """The OS's own encrypted directory on the mounted data area (identity, update
        state, TUF metadata, the agent's spool). Only there after a verified boot (or a
        recovery) unlocked the volume in this power cycle."""
        if not os.path.ismount(self.data_mount):
            raise StateError("the data area is locked: only a verified boot (or the "
                             "recovery key) opens it")
        return self.data_mount / "system"

    @property
    @abc.abstractmethod
    def sealed_dir(self) -> Path:
        """Where the boot-bound keys lie wrapped, outside the data area (they open it)."""

    # --- TPM (optional) ----------------------------------------------------------
    @abc.abstractmethod
    def tpm(self) -> str | None:
        """How to reach the board's TPM (a TCTI string), powered; None without one."""

    # --- measurement register (a PCR: reset at power-on, extend-only) -------
    @abc.abstractmethod
    def extend_register(self, digest: bytes) -> bytes:
        """``R = SHA-384(R || digest)``; return the new value."""

    @abc.abstractmethod
    def read_register(self) -> bytes: ...

    # --- RAM (volatile, per power cycle) ------------------------------------
    @abc.abstractmethod
    def ram_read(self, name: str) -> bytes | None: ...

    @abc.abstractmethod
    def ram_write(self, name: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def ram_file(self, name: str) -> Path:
        """A RAM entry as a file path, for APIs that only take paths (TLS key loading)."""

    # --- peripherals apps may be granted ------------------------------------------
    @abc.abstractmethod
    def serial_ports(self) -> dict[str, Path]:
        """Serial ports by name (``ttyUSB0``) and their device nodes."""

    @abc.abstractmethod
    def gpio_dir(self) -> Path | None:
        """The directory of the GPIO lines (``gpioN/value``, ``gpioN/direction``)."""
