"""Unique per-device credentials: no default user or password, anywhere.

The maintenance credential is made at provisioning, random for each gateway.
The device keeps only a scrypt hash of it (mode 0600); the factory seals the
plaintext to the OEM's escrow key. Nothing is ever shared between two gateways.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from edgeward.board.base import Board
from edgeward.errors import InputError
from edgeward.files import read_file, write_secret

SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _path(board: Board) -> Path:
    return board.data_dir / "credentials" / "maintenance.json"


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT["n"], r=SCRYPT["r"],
                          p=SCRYPT["p"], dklen=32)


def make_maintenance(board: Board, serial: str) -> tuple[str, str]:
    """Create this gateway's maintenance login; return (user, password) once."""
    user, password, salt = f"maint-{serial}", secrets.token_urlsafe(24), secrets.token_bytes(16)
    write_secret(_path(board), json.dumps({
        "user": user, "kdf": "scrypt", **SCRYPT, "salt": salt.hex(),
        "hash": _hash(password, salt).hex(),
    }, sort_keys=True).encode())
    return user, password


def check_maintenance(board: Board, user: str, password: str) -> bool:
    stored = json.loads(read_file(_path(board), "maintenance credential"))
    if stored.get("kdf") != "scrypt":
        raise InputError("maintenance credential: unknown key derivation")
    given = _hash(password, bytes.fromhex(stored["salt"]))
    user_ok = hmac.compare_digest(user.encode(), stored["user"].encode())
    return hmac.compare_digest(given, bytes.fromhex(stored["hash"])) and user_ok
