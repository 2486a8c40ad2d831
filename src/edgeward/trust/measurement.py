"""Measured boot: a SHA-384 register and the event log that explains it.

Each stage measures the next before handing over: it appends an event
(component, digest, version, security version, signer) and extends the
register: ``R' = SHA-384(R || SHA-384(canonical(event)))``, as a TPM PCR
extend. A verifier replays the log and must land on the quoted register.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeward.errors import AttestationError
from edgeward.trust.canonical import Fields, canonical, from_hex
from edgeward.trust.digest import DIGEST_SIZE, sha384

INITIAL = bytes(DIGEST_SIZE)
STAGES = ("rom", "bl2", "kernel", "os")
COMPONENTS = {"rom": "bl2", "bl2": "kernel-bundle", "kernel": "rootfs", "os": "os-state"}


@dataclass(frozen=True)
class Event:
    stage: str
    component: str
    digest: str
    version: str
    security_version: int
    signer: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "component": self.component, "digest": self.digest,
            "version": self.version, "security_version": self.security_version,
            "signer": self.signer,
        }

    @classmethod
    def from_dict(cls, obj: object, what: str) -> Event:
        if not isinstance(obj, dict):
            raise AttestationError(f"{what} must be an object")
        f = Fields(obj, what, AttestationError)
        f.expect({"stage", "component", "digest", "version", "security_version", "signer"})
        digest = f.str_("digest", 96)
        try:
            if len(from_hex(digest)) != DIGEST_SIZE:
                raise ValueError
        except ValueError:
            f.fail("digest must be 96 lowercase hex characters")
        return cls(f.str_("stage", 16), f.str_("component", 32), digest,
                   f.str_("version", 64), f.int_("security_version", 0, 64),
                   f.str_("signer", 96))


def event_digest(event: Event) -> bytes:
    return sha384(canonical(event.to_dict()))


def extend(register: bytes, event: Event) -> bytes:
    return sha384(register + event_digest(event))


def replay(events: list[Event]) -> bytes:
    register = INITIAL
    for event in events:
        register = extend(register, event)
    return register


def os_state_digest(debug_disable: bool, huk_locked: bool, data_volume: str) -> str:
    """The OS stage's measurement of the device's security state."""
    return sha384(canonical({"debug_disable": debug_disable, "huk_locked": huk_locked,
                             "data_volume": data_volume})).hex()


HEALTHY_OS_STATE = os_state_digest(True, True, "unsealed")
