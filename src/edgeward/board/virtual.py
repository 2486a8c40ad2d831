"""VirtualBoard: a gateway's hardware modelled over files in a device directory.

::

    DEV/fuses.bin          the OTP bank (see fuses.py)
    DEV/flash/<part>.img   bl2, kernel_a/b, rootfs_a/b (replaced atomically)
    DEV/flash/bootenv.0|1  redundant boot environment
    DEV/flash/data.img     the data area: ext4 with fscrypt (see device/storage)
    DEV/flash/sealed/      the boot-bound keys, wrapped (see device/keyring.py)
    DEV/data/              where the OS mounts the data area (the gateway's /data)
    DEV/ram/               volatile: cleared at power-on (HUK lock, register, event log,
                           the keys a verified boot opened); the data area's mount and its
                           keys in the kernel go with it
    DEV/peripherals/serial/<name>   serial ports: links to their device nodes (root:dialout)
    DEV/peripherals/gpio/gpioN/     GPIO lines: value and direction (the virtual controller)
"""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from edgeward.board import bootenv, fuses, mounts, swtpm
from edgeward.board.base import PARTITIONS, Board
from edgeward.errors import FuseError, InputError
from edgeward.files import (
    private_dir,
    remove_stale_temporaries,
    traversable_dir,
    write_atomic,
)
from edgeward.trust.digest import sha384
from edgeward.trust.hashtree import Reader
from edgeward.trust.measurement import INITIAL

CHUNK = 1 << 20


def _chunks(src: Path) -> Iterator[bytes]:
    with src.open("rb") as f:
        while block := f.read(CHUNK):
            yield block


class VirtualBoard(Board):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._fuses = root / "fuses.bin"
        self._flash = root / "flash"
        self._ram = root / "ram"

    # --- lifecycle -------------------------------------------------------------
    @classmethod
    def create(cls, root: Path) -> VirtualBoard:
        """A blank board: unburnt fuses, empty flash."""
        traversable_dir(root)  # the way to the data area: passable, not listable
        board = cls(root)
        private_dir(board._flash)
        private_dir(board.sealed_dir)
        traversable_dir(board.data_mount)
        private_dir(board._ram)
        if not board._fuses.exists():
            write_atomic(board._fuses, fuses.blank(), mode=0o600)
        return board

    @classmethod
    def open(cls, root: Path) -> VirtualBoard:
        board = cls(root)
        if not board._fuses.is_file():
            raise InputError(f"no gateway at {root} (no fuse bank): provision it first")
        return board

    # --- fuses -------------------------------------------------------------------
    def _bank(self) -> bytes:
        return self._fuses.read_bytes()

    def fuses(self) -> fuses.FuseState:
        return fuses.decode(self._bank())

    def burn(self, field: str, value: bytes) -> None:
        if field not in fuses.LOCK_BITS:
            raise FuseError(f"{field} is not a write-once fuse field")
        write_atomic(self._fuses, fuses.burn_once(self._bank(), field, value), mode=0o600)

    def advance_security_version(self, version: int, counter: str = "security_version"
                                 ) -> None:
        write_atomic(self._fuses, fuses.advance_security_version(self._bank(), version,
                                                                 counter), mode=0o600)

    def read_huk(self) -> bytes:
        if self.huk_locked():
            raise FuseError("the HUK is locked until the next reset")
        if not self.fuses().huk_burnt:
            raise FuseError("no HUK is burnt")
        return fuses.huk(self._bank())

    def lock_huk(self) -> None:
        self.ram_write("huk.lock", b"1")

    def huk_locked(self) -> bool:
        return (self._ram / "huk.lock").exists()

    # --- power -----------------------------------------------------------------
    def power_on(self) -> None:
        self.power_off()
        private_dir(self._ram)
        remove_stale_temporaries(self._flash)
        remove_stale_temporaries(self.sealed_dir)

    def power_off(self) -> None:
        if self.data_mount.is_dir():
            mounts.unmount_under(self.data_mount)
        chip = self._tpm_running()
        if chip is not None:
            swtpm.stop_started(*chip)
        shutil.rmtree(self._ram, ignore_errors=True)

    # --- TPM ---------------------------------------------------------------------------
    @property
    def tpm_dir(self) -> Path:
        """The chip's state (a software TPM's): its seeds, NV indices, persistent objects."""
        return self.root / "tpm"

    def add_tpm(self) -> None:
        """Solder a TPM on (at the factory): a new chip, with seeds of its own."""
        swtpm.manufacture(self.tpm_dir)

    def _tpm_running(self) -> tuple[int, int] | None:
        raw = self.ram_read("tpm")
        if raw is None:
            return None
        port, _, pid = raw.decode().partition(" ")
        return int(port), int(pid)

    def tpm(self) -> str | None:
        if not (self.tpm_dir / swtpm.STATE_FILE).is_file():
            return None
        chip = self._tpm_running()
        if chip is None or not swtpm.answering(*chip):
            started = swtpm.start(self.tpm_dir)  # powered with the board: PCRs reset
            chip = (started.port, started.process.pid)
            self.ram_write("tpm", f"{chip[0]} {chip[1]}".encode())
        return f"swtpm:host={swtpm.HOST},port={chip[0]}"

    # --- flash -------------------------------------------------------------------
    def _part(self, partition: str) -> Path:
        if partition not in PARTITIONS:
            raise InputError(f"no flash partition {partition!r}")
        return self._flash / f"{partition}.img"

    def partition_path(self, partition: str) -> Path:
        """The file behind a partition (tests and tools that tamper with flash)."""
        return self._part(partition)

    def read(self, partition: str) -> bytes | None:
        try:
            return self._part(partition).read_bytes()
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def reader(self, partition: str) -> Iterator[tuple[Reader, int] | None]:
        try:
            fd = os.open(self._part(partition), os.O_RDONLY)
        except FileNotFoundError:
            yield None
            return
        try:
            yield (lambda offset, size: os.pread(fd, size, offset)), os.fstat(fd).st_size
        finally:
            os.close(fd)

    def write(self, partition: str, data: bytes | Path) -> None:
        if isinstance(data, Path):
            write_atomic(self._part(partition), _chunks(data), mode=0o600)
        else:
            write_atomic(self._part(partition), data, mode=0o600)

    def read_env(self) -> bootenv.BootEnv | None:
        found = bootenv.newest([self._read_opt(self._flash / f"bootenv.{i}") for i in (0, 1)])
        return found[0] if found else None

    def write_env(self, env: bootenv.BootEnv) -> None:
        found = bootenv.newest([self._read_opt(self._flash / f"bootenv.{i}") for i in (0, 1)])
        target, seq = (0, 1) if found is None else (1 - found[1], found[0].seq + 1)
        write_atomic(self._flash / f"bootenv.{target}", env.with_seq(seq).encode(), mode=0o600)

    @staticmethod
    def _read_opt(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    @property
    def data_partition(self) -> Path:
        return self._flash / "data.img"

    @property
    def data_mount(self) -> Path:
        return self.root / "data"

    @property
    def sealed_dir(self) -> Path:
        return self._flash / "sealed"

    # --- measurement register -------------------------------------------------
    def extend_register(self, digest: bytes) -> bytes:
        value = sha384(self.read_register() + digest)
        self.ram_write("register", value)
        return value

    def read_register(self) -> bytes:
        return self.ram_read("register") or INITIAL

    # --- RAM ---------------------------------------------------------------------
    def ram_read(self, name: str) -> bytes | None:
        return self._read_opt(self._ram / name)

    def ram_write(self, name: str, data: bytes) -> None:
        write_atomic(private_dir(self._ram) / name, data, mode=0o600)

    def ram_file(self, name: str) -> Path:
        return self._ram / name

    # --- peripherals ---------------------------------------------------------------
    def serial_ports(self) -> dict[str, Path]:
        folder = self.root / "peripherals" / "serial"
        if not folder.is_dir():
            return {}
        found = {}
        for link in sorted(folder.iterdir()):
            target = link.resolve()
            if target.is_char_device():
                found[link.name] = target
        return found

    def gpio_dir(self) -> Path | None:
        folder = self.root / "peripherals" / "gpio"
        return folder if folder.is_dir() else None

    def attach_serial(self, name: str, device: Path) -> Path:
        """Plug a serial port in: ``name`` stands for the character device ``device`` (a
        pseudo-terminal's slave in tests: those open only through devpts, so the board
        records where it is). It becomes root:dialout 0660, as udev makes serial ports."""
        if not name.isalnum() or not name.startswith("tty"):
            raise InputError(f"{name!r} is not a serial port name")
        if not device.is_char_device():
            raise InputError(f"{device} is not a character device")
        folder = traversable_dir(traversable_dir(self.root / "peripherals") / "serial")
        link = folder / name
        link.unlink(missing_ok=True)
        link.symlink_to(device)
        with contextlib.suppress(KeyError):
            os.chown(device, 0, grp.getgrnam("dialout").gr_gid)
        os.chmod(device, 0o660)
        return link

    def add_gpio_line(self, line: int) -> Path:
        """A line of the virtual GPIO controller (root's until an app is granted it)."""
        folder = traversable_dir(traversable_dir(self.root / "peripherals") / "gpio")
        path = folder / f"gpio{line}"
        path.mkdir(mode=0o700, exist_ok=True)
        for name, value in (("value", "0\n"), ("direction", "in\n")):
            if not (path / name).exists():
                (path / name).write_text(value)
            os.chmod(path / name, 0o600)
        return path
