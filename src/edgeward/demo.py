"""``edgeward demo``: the whole story so far, on three virtual gateways.

A factory is set up, three gateways are provisioned and booted, each attests
to a fresh nonce, then one has a byte of its kernel bundle flipped (as someone
with a screwdriver and a flash programmer would) and its boot is refused.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.board.virtual import VirtualBoard
from edgeward.device import attest, identity
from edgeward.device.boot.chain import boot
from edgeward.errors import Error
from edgeward.factory import station
from edgeward.factory.provision import provision
from edgeward.trust.quote import KnownGood, verify_quote

SERIALS = ("gw-0001", "gw-0002", "gw-0003")
TAMPERED = "gw-0003"


@dataclass
class GatewayOutcome:
    serial: str
    provisioned: bool = False
    first_boot: str = ""
    attestation: str = ""
    after_tamper: str = ""
    refused_stage: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DemoResult:
    directory: Path
    gateways: list[GatewayOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(g.first_boot == "booted" and g.attestation == "attested" for g in
                   self.gateways) and any(g.after_tamper == "refused" for g in self.gateways)


def flip_byte(path: Path, offset: int | None = None) -> int:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return at


def run(directory: Path, say: Callable[[str], None]) -> DemoResult:
    now = dt.datetime.now(dt.UTC)
    result = DemoResult(directory)
    say(f"factory: making OEM keys, CA and release 1.0.0 in {directory / 'factory'}")
    factory = station.init(directory / "factory", "ew-gw1", "Demo Gateways Inc.", "1.0.0", 1,
                           None, now)
    known = KnownGood.from_json(factory.release.known_good.read_bytes())
    for serial in SERIALS:
        outcome = GatewayOutcome(serial)
        result.gateways.append(outcome)
        device = directory / "gateways" / serial
        provision(factory, device, serial, None, now)
        outcome.provisioned = True
        say(f"{serial}: provisioned (fuses burnt, identity made on the device, slot A written)")
        board = VirtualBoard.open(device)
        report = boot(board)
        outcome.first_boot = report.verdict
        say(f"{serial}: boot {report.verdict}, register {report.register.hex()[:16]}…")
        nonce = os.urandom(32)
        try:
            _, envelope = attest.quote(board, nonce)
            verify_quote(envelope, identity.certificate(board), [factory.ca_cert], nonce,
                         known, now)
            outcome.attestation = "attested"
        except Error as e:
            outcome.attestation, outcome.reason = "failed", e.message
        say(f"{serial}: attestation {outcome.attestation}")
    tampered = VirtualBoard.open(directory / "gateways" / TAMPERED)
    at = flip_byte(tampered.partition_path("kernel_a"))
    say(f"{TAMPERED}: flipped one bit at byte {at} of its kernel bundle in flash")
    for outcome in result.gateways:
        report = boot(VirtualBoard.open(directory / "gateways" / outcome.serial))
        outcome.after_tamper = report.verdict
        if report.refused_stage:
            outcome.refused_stage, outcome.reason = report.refused_stage, report.reason
    return result
