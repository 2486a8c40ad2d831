"""Boot-bound secrets: sealed under the HUK at provisioning, opened only after a
verified boot, and kept in RAM for the rest of that power cycle.

The key-encryption key is HKDF(HUK) bound to the fused boot root key: the same
board running a chain that its ROM accepted derives it; the flash in another
board (another HUK) never does. Only the OS stage derives it, after the chain
verified, and it locks the HUK right after, so nothing later can. A dump of the
flash holds only wrapped blobs: no identity key to sign quotes with, no data key.

Security version binding (a sealed key that an older chain cannot open) needs a
reseal on every security update; it comes with the TPM sealing of /data.
"""

from __future__ import annotations

from pathlib import Path

from edgeward.board.base import Board
from edgeward.errors import StateError
from edgeward.files import write_secret
from edgeward.trust import wrap

PURPOSE = b"edgeward boot-bound secret v1"
DATA_VOLUME = "data-volume"
IDENTITY = "identity"


def _path(board: Board, name: str) -> Path:
    return board.sealed_dir / f"{name}.wrapped"


def _binding(root_key_hash: bytes, name: str) -> bytes:
    return b"root=" + root_key_hash.hex().encode() + b";secret=" + name.encode()


def derive(board: Board) -> bytes:
    """The KEK; reads the HUK, so only before it is locked (provisioning, OS stage)."""
    return wrap.derive_kek(board.read_huk(), PURPOSE, board.fuses().root_key_hash)


def seal(board: Board, kek: bytes, name: str, secret: bytes) -> None:
    if _path(board, name).exists():
        raise StateError(f"a sealed {name} secret already exists on this device")
    binding = _binding(board.fuses().root_key_hash, name)
    write_secret(_path(board, name), wrap.wrap(kek, secret, binding))


def unseal(board: Board, kek: bytes, name: str) -> bytes:
    """Open a sealed secret; IntegrityError if it was not sealed on this board."""
    path = _path(board, name)
    if not path.exists():
        raise StateError(f"the sealed {name} secret is missing: the data area was wiped "
                         "or tampered with")
    return wrap.unwrap(kek, path.read_bytes(), _binding(board.fuses().root_key_hash, name))


def remember(board: Board, name: str, secret: bytes) -> None:
    board.ram_write(f"keyring.{name}", secret)


def recall(board: Board, name: str) -> bytes | None:
    """A secret the OS stage opened in this power cycle, or None."""
    return board.ram_read(f"keyring.{name}")


def opened_file(board: Board, name: str) -> Path | None:
    """Where an opened secret sits in RAM (for TLS libraries that want a path), or None."""
    return board.ram_file(f"keyring.{name}") if recall(board, name) is not None else None
