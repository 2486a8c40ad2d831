"""The kernel's fscrypt, through its ioctls (linux/fscrypt.h), on a mounted filesystem.

Only v2 policies: keys live in the filesystem's own keyring (added with
``FS_IOC_ADD_ENCRYPTION_KEY``, named by the identifier the kernel derives from
them), contents in AES-256-XTS and names in AES-256-CTS, with per-file keys
derived by the kernel (HKDF-SHA512). A directory's policy is set once, while it
is empty; everything created under it inherits it. Removing a key (or
unmounting) wipes it from the kernel and evicts the cached plaintext, so what
was under it is ciphertext again until the key is added back.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import IntegrityError, StateError, ToolError

POLICY_V2 = 2
MODE_AES_256_XTS = 1
MODE_AES_256_CTS = 4
FLAGS_PAD_32 = 0x03
KEY_SPEC_IDENTIFIER = 2
IDENTIFIER_SIZE = 16
KEY_SIZE = 64  # AES-256-XTS takes 64 bytes; v2 master keys must be at least that long

KEY_ABSENT, KEY_PRESENT, KEY_INCOMPLETELY_REMOVED = 1, 2, 3


def _ioc(direction: int, number: int, size: int) -> int:
    return direction << 30 | size << 16 | ord("f") << 8 | number


class _PolicyV2(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint8), ("contents_mode", ctypes.c_uint8),
                ("filenames_mode", ctypes.c_uint8), ("flags", ctypes.c_uint8),
                ("log2_data_unit_size", ctypes.c_uint8), ("reserved", ctypes.c_uint8 * 3),
                ("identifier", ctypes.c_uint8 * IDENTIFIER_SIZE)]


class _KeySpec(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("identifier", ctypes.c_uint8 * 32)]


class _PolicyEx(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint64), ("policy", _PolicyV2)]


class _RemoveKey(ctypes.Structure):
    _fields_ = [("spec", _KeySpec), ("status_flags", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32 * 5)]


class _KeyStatus(ctypes.Structure):
    _fields_ = [("spec", _KeySpec), ("reserved", ctypes.c_uint32 * 6),
                ("status", ctypes.c_uint32), ("status_flags", ctypes.c_uint32),
                ("user_count", ctypes.c_uint32), ("out_reserved", ctypes.c_uint32 * 13)]


_ADD_HEADER = 80  # key_spec (40), raw_size, key_id, flags, reserved[7]

# _IOR('f', 19, struct fscrypt_policy_v1): a v2 policy is told apart by its version byte
SET_POLICY = _ioc(2, 19, 12)
GET_POLICY_EX = _ioc(3, 22, 9)
ADD_KEY = _ioc(3, 23, _ADD_HEADER)
REMOVE_KEY = _ioc(3, 24, ctypes.sizeof(_RemoveKey))
KEY_STATUS = _ioc(3, 26, ctypes.sizeof(_KeyStatus))


@dataclass(frozen=True)
class Policy:
    identifier: bytes
    contents_mode: int
    filenames_mode: int
    flags: int

    @property
    def standard(self) -> bool:
        """AES-256-XTS contents, AES-256-CTS names, names padded to 32 bytes."""
        return (self.contents_mode, self.filenames_mode, self.flags) == (
            MODE_AES_256_XTS, MODE_AES_256_CTS, FLAGS_PAD_32)


def _fd(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise StateError(f"cannot open {path}: {e.strerror}") from e


def _ioctl(path: Path, request: int, arg: ctypes.Array[ctypes.c_char] | ctypes.Structure,
           what: str) -> None:
    fd = _fd(path)
    try:
        fcntl.ioctl(fd, request, arg, True)
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            raise ToolError(f"{what}: the filesystem at {path} does not support encryption "
                            "(ext4 made without -O encrypt, or a kernel without fscrypt)") from e
        raise StateError(f"{what} on {path}: {e.strerror}") from e
    finally:
        os.close(fd)


def add_key(mountpoint: Path, key: bytes) -> bytes:
    """Give the filesystem a master key; return the identifier the kernel derived."""
    if len(key) < KEY_SIZE:
        raise IntegrityError(f"an fscrypt master key takes at least {KEY_SIZE} bytes")
    buf = ctypes.create_string_buffer(_ADD_HEADER + len(key))
    spec = _KeySpec.from_buffer(buf)
    spec.type = KEY_SPEC_IDENTIFIER
    ctypes.c_uint32.from_buffer(buf, 40).value = len(key)
    ctypes.memmove(ctypes.addressof(buf) + _ADD_HEADER, key, len(key))
    try:
        _ioctl(mountpoint, ADD_KEY, buf, "adding an encryption key")
        return bytes(spec.identifier[:IDENTIFIER_SIZE])
    finally:
        ctypes.memset(ctypes.addressof(buf) + _ADD_HEADER, 0, len(key))
        del spec


def remove_key(mountpoint: Path, identifier: bytes) -> bool:
    """Wipe a key from the kernel; False if files under it are still open (their
    plaintext stays until they close: the key is then only *incompletely* removed)."""
    arg = _RemoveKey()
    arg.spec.type = KEY_SPEC_IDENTIFIER
    ctypes.memmove(arg.spec.identifier, identifier, IDENTIFIER_SIZE)
    try:
        _ioctl(mountpoint, REMOVE_KEY, arg, "removing an encryption key")
    except StateError:
        if key_status(mountpoint, identifier) == KEY_ABSENT:
            return True
        raise
    return not arg.status_flags & 0x1  # FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY


def key_status(mountpoint: Path, identifier: bytes) -> int:
    arg = _KeyStatus()
    arg.spec.type = KEY_SPEC_IDENTIFIER
    ctypes.memmove(arg.spec.identifier, identifier, IDENTIFIER_SIZE)
    _ioctl(mountpoint, KEY_STATUS, arg, "reading an encryption key's status")
    return int(arg.status)


def set_policy(directory: Path, identifier: bytes) -> None:
    """Encrypt ``directory`` (empty) and all it will hold under the key ``identifier``."""
    policy = _PolicyV2(version=POLICY_V2, contents_mode=MODE_AES_256_XTS,
                       filenames_mode=MODE_AES_256_CTS, flags=FLAGS_PAD_32)
    ctypes.memmove(policy.identifier, identifier, IDENTIFIER_SIZE)
    fd = _fd(directory)
    try:
        fcntl.ioctl(fd, SET_POLICY, policy, True)
    except OSError as e:
        if e.errno == errno.EEXIST:
            raise IntegrityError(f"{directory} is already encrypted under another key") from e
        if e.errno == errno.ENOTEMPTY:
            raise StateError(f"{directory} is not empty: only an empty directory can be "
                             "given an encryption policy") from e
        if e.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            raise ToolError(f"the filesystem of {directory} does not support encryption") from e
        raise StateError(f"encrypting {directory}: {e.strerror}") from e
    finally:
        os.close(fd)


def get_policy(directory: Path) -> Policy | None:
    """The directory's v2 policy, or None if it is not encrypted."""
    arg = _PolicyEx(size=ctypes.sizeof(_PolicyV2))
    fd = _fd(directory)
    try:
        fcntl.ioctl(fd, GET_POLICY_EX, arg, True)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        if e.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            raise ToolError(f"the filesystem of {directory} does not support encryption") from e
        raise StateError(f"reading the encryption policy of {directory}: {e.strerror}") from e
    finally:
        os.close(fd)
    p = arg.policy
    if p.version != POLICY_V2:
        raise IntegrityError(f"{directory} has a v{p.version} encryption policy; only v2 "
                             "policies are used")
    return Policy(bytes(p.identifier), p.contents_mode, p.filenames_mode, p.flags)
