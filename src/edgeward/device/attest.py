"""Attestation on the device: sign a quote over this power cycle's measurements."""

from __future__ import annotations

from edgeward.board.base import Board
from edgeward.device import identity
from edgeward.device.boot.chain import last_boot
from edgeward.errors import AttestationError, InputError
from edgeward.trust.canonical import from_hex
from edgeward.trust.certs import serial_of
from edgeward.trust.measurement import Event, replay
from edgeward.trust.quote import MAX_NONCE, Quote, sign_quote


def parse_nonce(text: str) -> bytes:
    try:
        nonce = from_hex(text.lower())
    except ValueError as e:
        raise InputError("nonce must be hex") from e
    if not 16 <= len(nonce) <= MAX_NONCE:
        raise InputError(f"nonce must be 16 to {MAX_NONCE} bytes (32 to {2 * MAX_NONCE} hex)")
    return nonce


def quote(board: Board, nonce: bytes) -> tuple[Quote, bytes]:
    """The quote for the current power cycle and its signed envelope."""
    state = last_boot(board)
    if state is None:
        raise AttestationError("no boot in this power cycle: boot the device first")
    if state["verdict"] != "booted":
        raise AttestationError(
            f"the last boot was refused at {state['refused_stage']}: nothing to attest")
    events = tuple(Event.from_dict(e, "boot event") for e in state["events"])
    register = board.read_register()
    if replay(list(events)) != register:
        raise AttestationError("the event log in RAM does not match the measurement register")
    key = identity.identity_key(board)  # only a verified boot opened it
    q = Quote(serial_of(identity.certificate(board)), nonce, register, events, state["slot"])
    return q, sign_quote(q, key)
