"""Files written so a crash never leaves a torn one: write aside, fsync, rename.

Key material and other secrets go through :func:`write_secret` (mode 0600 in
a 0700 directory); everything else through :func:`write_atomic`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgeward.errors import InputError, KeyFileError
from edgeward.trust import keys as keymod


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | Iterable[bytes], mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (bytes, or chunks streamed) in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in [data] if isinstance(data, bytes) else data:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def sha384_file(path: Path) -> str:
    """Hex SHA-384 of a file, streamed (constant memory)."""
    h = hashlib.sha384()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def prefix_chunks(path: Path, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The first ``size`` bytes of ``path``, streamed (InputError if it is shorter)."""
    with path.open("rb") as f:
        left = size
        while left:
            block = f.read(min(chunk, left))
            if not block:
                raise InputError(f"{path} is shorter than {size} bytes")
            left -= len(block)
            yield block


def remove_stale_temporaries(directory: Path, recursive: bool = False) -> list[str]:
    """Delete what an interrupted :func:`write_atomic` left behind; return the names."""
    gone = []
    for leftover in (directory.rglob if recursive else directory.glob)(".*.tmp-*"):
        leftover.unlink(missing_ok=True)
        gone.append(leftover.name)
    return gone


def traversable_dir(path: Path) -> Path:
    """A directory others may pass through but not list (0711): on the way to what a
    sandboxed app is given, which it must reach by name."""
    path.mkdir(parents=True, exist_ok=True, mode=0o711)
    os.chmod(path, 0o711)  # noqa: S103 (search only: no listing, no reading)
    return path


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_secret(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    write_atomic(path, data, mode=0o600)


def read_file(path: Path, what: str, limit: int = 64 << 20) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"{what} {path}: {size} bytes is over the {limit}-byte limit")
        return path.read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"{what} {path} does not exist") from e
    except IsADirectoryError as e:
        raise InputError(f"{what} {path} is a directory") from e
    except PermissionError as e:
        raise InputError(f"{what} {path} is not readable") from e


def save_private_key(path: Path, key: keymod.PrivateKey, passphrase: bytes | None = None
                     ) -> None:
    write_secret(path, keymod.private_pem(key, passphrase))


def load_private_key(path: Path, passphrase: bytes | None, what: str) -> keymod.PrivateKey:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0
    if mode & 0o077:
        raise KeyFileError(f"{what} {path} is readable by others (mode {mode:o}); chmod 600 it")
    return keymod.load_private(read_file(path, what, 1 << 16), passphrase, what)
