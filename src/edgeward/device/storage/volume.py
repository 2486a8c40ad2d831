"""The data area: an ext4 volume whose directories fscrypt encrypts, one key each.

::

    /data/                 the volume's root: nothing but the two folders below
    /data/system/          the OS's own state (identity, updates, TUF, spool), key "system"
    /data/apps/            one folder per app, nothing else
    /data/apps/<app>/      code, config, data, secrets of one app, key "app:<app>"

Every key is derived from the volume key (:func:`trust.wrap.derive_directory_key`),
which a verified boot unwraps (keyring.py) and keeps in RAM for this power cycle,
so the agent can give a newly installed app its own key. One app's key opens
nothing of another's, and a flash dump without the volume key is ciphertext
(names included). Unmounting, as a power cut does, wipes the keys from the kernel.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgeward.board import mounts
from edgeward.board.base import Board
from edgeward.device import keyring
from edgeward.device.storage import fscrypt
from edgeward.errors import IntegrityError, StateError, ToolError
from edgeward.files import remove_stale_temporaries, traversable_dir
from edgeward.trust.targets import check_name
from edgeward.trust.wrap import derive_directory_key, directory_key_identifier

SYSTEM, APPS = "system", "apps"
DEFAULT_SIZE = 1 << 30  # sparse: the image only takes what is written
MOUNT_OPTIONS = "loop,nodev,nosuid"


def unlocked(board: Board) -> bool:
    """Mounted, with the system folder's key in the kernel. A boot cut between the two
    (on the virtual board a killed process leaves its mount) is still locked."""
    if not os.path.ismount(board.data_mount):
        return False
    system = board.data_mount / SYSTEM
    identifier = _policy_key(system) if system.is_dir() else None
    return (identifier is not None
            and fscrypt.key_status(board.data_mount, identifier) == fscrypt.KEY_PRESENT)


def _add(board: Board, volume_key: bytes, label: str) -> bytes:
    return fscrypt.add_key(board.data_mount, derive_directory_key(volume_key, label))


def format_volume(board: Board, volume_key: bytes, size: int = DEFAULT_SIZE) -> None:
    """Make the data area (provisioning): an empty ext4 with encryption, mounted, with the
    system folder encrypted under its key. Refuses to format over an existing one."""
    image = board.data_partition
    if image.exists():
        raise StateError(f"{image} already holds a data area; it is formatted once")
    part = image.with_name(image.name + ".part")
    part.unlink(missing_ok=True)
    with part.open("wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.truncate(size)
    try:
        mounts.run("mkfs.ext4", "-q", "-F", "-O", "encrypt", "-m", "0", "-L", "edgeward-data",
              "-E", "lazy_itable_init=1,lazy_journal_init=1", str(part))
    except ToolError:
        part.unlink(missing_ok=True)
        raise
    part.rename(image)
    _mount(board)
    system = board.data_mount / SYSTEM
    system.mkdir(mode=0o711)
    fscrypt.set_policy(system, _add(board, volume_key, SYSTEM))
    traversable_dir(board.data_mount / APPS)


def _mount(board: Board) -> None:
    if not board.data_partition.is_file():
        raise StateError("the data area is missing from the flash")
    traversable_dir(board.data_mount)
    mounts.mount(board.data_partition, board.data_mount, "ext4", MOUNT_OPTIONS)


def unlock(board: Board, volume_key: bytes) -> None:
    """Mount the data area and give the kernel the keys of its folders.

    A volume key that is not this volume's is refused (the system folder's policy
    names another key) and leaves it unmounted.
    """
    _mount(board)
    system = board.data_mount / SYSTEM
    try:
        if _policy_key(system) != _identifier(volume_key, SYSTEM):
            raise IntegrityError("the data area is not encrypted under this volume key")
        _add(board, volume_key, SYSTEM)
        for folder in sorted((board.data_mount / APPS).iterdir()):
            label = f"app:{folder.name}"
            if folder.is_dir() and _policy_key(folder) == _identifier(volume_key, label):
                _add(board, volume_key, label)  # else it stays sealed: not one of ours
    except Exception:
        lock(board)
        raise
    remove_stale_temporaries(system, recursive=True)


def _identifier(volume_key: bytes, label: str) -> bytes:
    return directory_key_identifier(derive_directory_key(volume_key, label))


def _policy_key(folder: Path) -> bytes | None:
    policy = fscrypt.get_policy(folder)
    return policy.identifier if policy is not None and policy.standard else None


def lock(board: Board) -> None:
    """Unmount the data area (and what is mounted inside it): its keys leave the kernel."""
    mounts.unmount_under(board.data_mount)


def app_dir(board: Board, name: str) -> Path:
    """An app's own folder, made (and encrypted under the app's key) on first use."""
    check_name(name, "app")
    if not unlocked(board):
        raise StateError("the data area is locked: only a verified boot opens it")
    folder = board.data_mount / APPS / name
    volume_key = keyring.recall(board, keyring.DATA_VOLUME)
    if volume_key is None:
        raise StateError("the volume key is not open in this power cycle: cannot give "
                         f"{name} an encrypted folder")
    if folder.is_dir() and not folder.is_symlink():
        if _policy_key(folder) != _identifier(volume_key, f"app:{name}"):
            raise IntegrityError(f"{folder} is not encrypted under {name}'s key: refused")
        return folder
    identifier = _add(board, volume_key, f"app:{name}")
    part = folder.with_name(f".{name}.new")
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(mode=0o711)
    fscrypt.set_policy(part, identifier)
    part.rename(folder)
    os.chmod(folder, 0o711)  # noqa: S103 (passable to the app's sandbox, not listable)
    return folder


def forget_app(board: Board, name: str) -> None:
    """After an app's folder was deleted: wipe its key from the kernel."""
    volume_key = keyring.recall(board, keyring.DATA_VOLUME)
    if volume_key is not None and unlocked(board):
        key = derive_directory_key(volume_key, f"app:{name}")
        fscrypt.remove_key(board.data_mount, directory_key_identifier(key))


def describe(board: Board) -> dict[str, object]:
    """The data area as ``device status`` shows it (no key needed, none revealed)."""
    info: dict[str, object] = {"partition": str(board.data_partition),
                               "formatted": board.data_partition.is_file(),
                               "unlocked": unlocked(board)}
    if info["unlocked"]:
        policy = fscrypt.get_policy(board.data_mount / SYSTEM)
        info["encryption"] = ("fscrypt v2, AES-256-XTS contents, AES-256-CTS names"
                              if policy is not None and policy.standard else "NONE")
        apps = [p for p in sorted((board.data_mount / APPS).iterdir()) if p.is_dir()]
        info["app_folders"] = {p.name: _policy_key(p) is not None for p in apps}
    return info
