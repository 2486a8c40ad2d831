"""The recovery key: the one way into the data area that needs no verified boot.

Made at provisioning, random per gateway (160 bits, written as eight groups of
four base32 characters). The volume key is wrapped under a key derived from it
(``flash/sealed/data-volume.recovery``); the key itself waits, inside the
encrypted system folder, until the agent has escrowed it to the fleet server,
and is then deleted from the gateway. A tenant admin fetches it from the server
(every fetch audited) and ``edgeward device recover`` opens the data area with
it, for instance to copy an app's data off a board whose boot chain is gone.
It opens the data area only: the identity key stays sealed to a verified boot.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from pathlib import Path

from edgeward.board.base import Board
from edgeward.device import keyring
from edgeward.device.storage import volume
from edgeward.errors import InputError, IntegrityError, StateError
from edgeward.files import read_file, write_secret
from edgeward.trust import wrap

PURPOSE = b"edgeward recovery key v1"
BINDING = b"secret=data-volume;by=recovery-key"
PENDING = "recovery-key.pending"
_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def _wrapped(board: Board) -> Path:
    return board.sealed_dir / "data-volume.recovery"


def _pending(board: Board) -> Path:
    return board.data_dir / "edgeward" / PENDING


def _secret(text: str) -> bytes:
    """The 20 bytes a recovery key stands for; InputError if it is not one."""
    compact = "".join(text.split()).replace("-", "").upper()
    if len(compact) != 32 or not set(compact) <= _ALPHABET:
        raise InputError("not a recovery key (eight groups of four letters and digits, "
                         "e.g. ABCD-EFGH-...)")
    return base64.b32decode(compact)


def _kek(secret: bytes) -> bytes:
    return wrap.derive_kek(secret, PURPOSE, BINDING)


def make(board: Board, volume_key: bytes) -> str:
    """At provisioning (the data area unlocked): wrap the volume key under a new recovery
    key, keep the key for escrow, and return it (the factory does not keep it)."""
    secret = secrets.token_bytes(20)
    text = base64.b32encode(secret).decode()
    key = "-".join(text[i:i + 4] for i in range(0, 32, 4))
    write_secret(_wrapped(board), wrap.wrap(_kek(secret), volume_key, BINDING))
    write_secret(_pending(board), key.encode())
    return key


def pending(board: Board) -> str | None:
    """The recovery key while it is not yet escrowed to the fleet server."""
    path = _pending(board)
    return path.read_text().strip() if path.exists() else None


def escrowed(board: Board, key: str) -> None:
    """The server holds ``key``: delete the gateway's own copy."""
    path = _pending(board)
    if path.exists() and hmac.compare_digest(path.read_text().strip().encode(), key.encode()):
        path.unlink()


def recover(board: Board, key: str) -> None:
    """Open the data area with the recovery key (this power cycle only)."""
    path = _wrapped(board)
    if not path.exists():
        raise StateError("this gateway has no recovery key (provisioned before there were any)")
    try:
        volume_key = wrap.unwrap(_kek(_secret(key)), read_file(path, "wrapped volume key"),
                                 BINDING)
    except IntegrityError as e:
        raise IntegrityError("the recovery key does not open this gateway's data area") from e
    volume.unlock(board, volume_key)
    keyring.remember(board, keyring.DATA_VOLUME, volume_key)
