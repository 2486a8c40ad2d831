"""Boot-bound secrets: sealed under the HUK at provisioning, opened only after a
verified boot, and kept in RAM for the rest of that power cycle.

The key-encryption key is HKDF(HUK) bound to the fused boot root key (the
signer of the whole chain: BL2 is its, the kernel BL2's) and to the fused OS
security version. The same board running a chain its ROM accepted, at that
security version, derives it; the flash in another board (another HUK) never
does, nor does an older chain. Only the OS stage derives it, after the chain
verified, and it locks the HUK right after, so nothing later can. A dump of the
flash holds only wrapped blobs: no identity key to sign quotes with, no data key.

Not bound to exact hashes, so a signed update needs no reseal; a *security*
update does, and gets it without a human: its trial boot, which the chain
verified and which still opens the blobs of the fused version, wraps them
forward for its own version before the HUK is locked. Once the update is
committed (the fuse burnt), the next boot opens those and deletes the old.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeward.board.base import Board
from edgeward.errors import StateError
from edgeward.files import write_secret
from edgeward.trust import wrap

PURPOSE = b"edgeward boot-bound secret v1"
DATA_VOLUME = "data-volume"
IDENTITY = "identity"
BOOT_BOUND = (DATA_VOLUME, IDENTITY)


@dataclass(frozen=True)
class Kek:
    """A key-encryption key and the OS security version it is bound to."""

    key: bytes
    security_version: int


def _path(board: Board, name: str, version: int) -> Path:
    return board.sealed_dir / f"{name}.v{version}.wrapped"


def _binding(root_key_hash: bytes, version: int, name: str) -> bytes:
    return (b"root=" + root_key_hash.hex().encode() + b";os-security-version="
            + str(version).encode() + b";secret=" + name.encode())


def derive(board: Board, security_version: int) -> Kek:
    """The KEK; reads the HUK, so only before it is locked (provisioning, OS stage)."""
    binding = _binding(board.fuses().root_key_hash, security_version, "")
    return Kek(wrap.derive_kek(board.read_huk(), PURPOSE, binding), security_version)


def seal(board: Board, kek: Kek, name: str, secret: bytes, replace: bool = False) -> None:
    path = _path(board, name, kek.security_version)
    if path.exists() and not replace:
        raise StateError(f"a sealed {name} secret already exists on this device")
    binding = _binding(board.fuses().root_key_hash, kek.security_version, name)
    write_secret(path, wrap.wrap(kek.key, secret, binding))


def unseal(board: Board, kek: Kek, name: str) -> bytes:
    """Open a sealed secret; IntegrityError if it was not sealed on this board."""
    path = _path(board, name, kek.security_version)
    if not path.exists():
        raise StateError(f"the sealed {name} secret for OS security version "
                         f"{kek.security_version} is missing: the flash was wiped or "
                         "tampered with")
    return wrap.unwrap(kek.key, path.read_bytes(),
                       _binding(board.fuses().root_key_hash, kek.security_version, name))


def prune(board: Board, below: int) -> list[str]:
    """Delete the blobs of security versions the fuses have passed (no chain that could
    still open them boots)."""
    gone = []
    for path in board.sealed_dir.glob("*.v*.wrapped"):
        version = path.name.rsplit(".v", 1)[1].removesuffix(".wrapped")
        if version.isdigit() and int(version) < below:
            path.unlink()
            gone.append(path.name)
    return gone


def remember(board: Board, name: str, secret: bytes) -> None:
    board.ram_write(f"keyring.{name}", secret)


def recall(board: Board, name: str) -> bytes | None:
    """A secret the OS stage opened in this power cycle, or None."""
    return board.ram_read(f"keyring.{name}")


def opened_file(board: Board, name: str) -> Path | None:
    """Where an opened secret sits in RAM (for TLS libraries that want a path), or None."""
    return board.ram_file(f"keyring.{name}") if recall(board, name) is not None else None
