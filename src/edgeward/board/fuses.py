"""The OTP fuse bank: layout and programming rules (pure).

Layout (98 bytes)::

    0   48  root_key_hash        SHA-384 of the boot root public key   write-once
    48  32  huk                  hardware unique key                   write-once, read-lockable
    80   8  security_version     firmware (BL2) counter: 64-bit thermometer   monotonic
    88   1  debug_disable        bit 0                                 write-once
    89   8  os_security_version  OS (kernel + rootfs) counter: thermometer     monotonic
    97   1  write_lock           bit 0 root_key_hash, 1 huk, 2 debug_disable

Two anti-rollback counters, as Arm's TBBR keeps a trusted and a non-trusted
NV counter: the ROM checks BL2 against the first, BL2 checks the kernel bundle
against the second, so an OS security update raises the OS counter without
needing a new BL2.

Programming ORs bits in, as OTP does: a request that would need a 1 to become
a 0 is refused, as is a second write to a write-once field.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeward.errors import FuseError
from edgeward.trust.canonical import canonical
from edgeward.trust.digest import sha384

SIZE = 98
FIELDS = {"root_key_hash": (0, 48), "huk": (48, 32), "security_version": (80, 8),
          "debug_disable": (88, 1), "os_security_version": (89, 8)}
COUNTERS = ("security_version", "os_security_version")
LOCK_BITS = {"root_key_hash": 0, "huk": 1, "debug_disable": 2}
LOCK_OFFSET = 97
MAX_SECURITY_VERSION = 64


@dataclass(frozen=True)
class FuseState:
    """What anyone may read of the fuses: everything but the HUK's value."""

    root_key_hash: bytes
    huk_burnt: bool
    security_version: int
    debug_disable: bool
    locked: frozenset[str]
    os_security_version: int = 0

    @property
    def provisioned(self) -> bool:
        return bool(self.locked)

    def public_hash(self) -> str:
        """SHA-384 over the public fuse fields, for the manufacturing record."""
        return sha384(canonical({
            "root_key_hash": self.root_key_hash.hex(),
            "security_version": self.security_version,
            "os_security_version": self.os_security_version,
            "debug_disable": self.debug_disable,
        })).hex()

    def to_dict(self) -> dict[str, object]:
        return {"root_key_hash": self.root_key_hash.hex(), "huk_burnt": self.huk_burnt,
                "security_version": self.security_version,
                "os_security_version": self.os_security_version,
                "debug_disable": self.debug_disable,
                "write_locked": sorted(self.locked)}


def blank() -> bytes:
    return bytes(SIZE)


def _field(bank: bytes, name: str) -> bytes:
    offset, size = FIELDS[name]
    return bank[offset:offset + size]


def decode(bank: bytes) -> FuseState:
    if len(bank) != SIZE:
        raise FuseError(f"fuse bank is {len(bank)} bytes, expected {SIZE}")
    counts = {}
    for name in COUNTERS:
        counter = int.from_bytes(_field(bank, name), "little")
        if counter & (counter + 1):
            raise FuseError(f"{name} fuses are not a thermometer code (bank corrupt)")
        counts[name] = counter.bit_count()
    lock = bank[LOCK_OFFSET]
    return FuseState(
        root_key_hash=_field(bank, "root_key_hash"),
        huk_burnt=bool(lock >> LOCK_BITS["huk"] & 1),
        security_version=counts["security_version"],
        debug_disable=bool(bank[88] & 1),
        locked=frozenset(n for n, bit in LOCK_BITS.items() if lock >> bit & 1),
        os_security_version=counts["os_security_version"],
    )


def huk(bank: bytes) -> bytes:
    return _field(bank, "huk")


def program(bank: bytes, offset: int, value: bytes) -> bytes:
    """OR ``value`` into the bank at ``offset``; refuse anything that needs 1 -> 0."""
    if offset < 0 or offset + len(value) > SIZE:
        raise FuseError("fuse write outside the bank")
    old = bank[offset:offset + len(value)]
    if any(o & ~v for o, v in zip(old, value, strict=True)):
        raise FuseError("a fuse bit cannot go from 1 back to 0")
    new = bytes(o | v for o, v in zip(old, value, strict=True))
    return bank[:offset] + new + bank[offset + len(value):]


def burn_once(bank: bytes, name: str, value: bytes) -> bytes:
    offset, size = FIELDS[name]
    if len(value) != size:
        raise FuseError(f"{name} takes {size} bytes, got {len(value)}")
    if name in decode(bank).locked:
        raise FuseError(f"{name} is already burnt; fuses are write-once")
    bank = program(bank, offset, value)
    return program(bank, LOCK_OFFSET, bytes([bank[LOCK_OFFSET] | 1 << LOCK_BITS[name]]))


def advance_security_version(bank: bytes, version: int, counter: str = "security_version"
                             ) -> bytes:
    if counter not in COUNTERS:
        raise FuseError(f"{counter} is not a security version counter")
    current = getattr(decode(bank), counter)
    if version < current:
        raise FuseError(f"security version cannot go down from {current} to {version}")
    if version > MAX_SECURITY_VERSION:
        raise FuseError(f"security version {version} is beyond the {MAX_SECURITY_VERSION} fuses")
    offset, size = FIELDS[counter]
    return program(bank, offset, ((1 << version) - 1).to_bytes(size, "little"))
