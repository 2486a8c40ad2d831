"""A gateway's state as an operator wants to see it (read-only, no verification)."""

from __future__ import annotations

from typing import Any

from edgeward.board.base import Board, kernel_partition
from edgeward.board.bootenv import SLOTS
from edgeward.device import identity
from edgeward.device.boot.chain import last_boot
from edgeward.device.storage import recovery, sealed, volume
from edgeward.errors import Error
from edgeward.trust import certs
from edgeward.trust.manifest import peek_kernel_bundle


def _slot_version(board: Board, slot: str) -> str | None:
    try:
        image = board.read(kernel_partition(slot))
        if image is None:
            return None
        bundle = peek_kernel_bundle(image)
    except (Error, OSError):
        return "unreadable"
    return f"{bundle.version} (security version {bundle.security_version}, unverified)"


def status(board: Board) -> dict[str, Any]:
    serial = model = fingerprint = None
    try:
        cert = identity.certificate(board)
        serial, fingerprint = certs.serial_of(cert), certs.fingerprint(cert)
        titles = [a.value for a in cert.subject if a.oid.dotted_string == "2.5.4.12"]
        model = str(titles[0]) if titles else None
    except Error:
        pass
    env = board.read_env()
    return {
        "serial": serial, "model": model, "certificate_sha384": fingerprint,
        "fuses": board.fuses().to_dict(),
        "boot_env": env.body() if env else None,
        "slots": {s: _slot_version(board, s) for s in SLOTS},
        "huk_locked": board.huk_locked(),
        "last_boot": last_boot(board),
        "data_area": {**volume.describe(board),
                      "key_sealed": "in the TPM" if sealed.holds_volume_key(board)
                      else "under the HUK",
                      "recovery_key": _recovery(board)},
    }


def _recovery(board: Board) -> str:
    if not volume.unlocked(board):
        return "unknown (locked)"
    return "waiting to be escrowed" if recovery.pending(board) else "escrowed"
