"""The boot environment, as U-Boot keeps it: active slot, try-boot, boot count.

Two redundant copies, each with a sequence number and a SHA-384 checksum; a
write goes to the older copy, a read takes the newest copy that checks out.
A crash in the middle of a write, or one rotten copy, leaves the other.

Semantics (BL2 applies them, see :mod:`edgeward.device.boot.bl2`): when
``try_boot`` is set, ``active`` holds a new slot that has not been committed;
each boot of it counts; past ``boot_limit`` tries, BL2 falls back to the
other slot and clears ``try_boot``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeward.errors import StateError
from edgeward.trust.canonical import Fields, canonical, load_object
from edgeward.trust.digest import sha384_hex

SLOTS = ("a", "b")
DEFAULT_BOOT_LIMIT = 3


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


@dataclass(frozen=True)
class BootEnv:
    active: str = "a"
    try_boot: bool = False
    boot_count: int = 0
    boot_limit: int = DEFAULT_BOOT_LIMIT
    last_fallback: str = ""
    seq: int = 0

    def body(self) -> dict[str, object]:
        return {"active": self.active, "try_boot": self.try_boot,
                "boot_count": self.boot_count, "boot_limit": self.boot_limit,
                "last_fallback": self.last_fallback, "seq": self.seq}

    def encode(self) -> bytes:
        body = self.body()
        return canonical({**body, "checksum": sha384_hex(canonical(body))})

    def with_seq(self, seq: int) -> BootEnv:
        return replace(self, seq=seq)


def decode(data: bytes) -> BootEnv:
    f = Fields(load_object(data, "boot environment", StateError), "boot environment",
               StateError)
    f.expect({"active", "try_boot", "boot_count", "boot_limit", "last_fallback", "seq",
              "checksum"})
    env = BootEnv(
        active=f.str_("active", 1), try_boot=f.bool_("try_boot"),
        boot_count=f.int_("boot_count", 0, 1000), boot_limit=f.int_("boot_limit", 1, 100),
        last_fallback=f.str_("last_fallback", 256), seq=f.int_("seq"),
    )
    if env.active not in SLOTS:
        f.fail(f"active slot {env.active!r} is not a or b")
    if f.str_("checksum", 96) != sha384_hex(canonical(env.body())):
        f.fail("checksum does not match")
    return env


def newest(copies: list[bytes | None]) -> tuple[BootEnv, int] | None:
    """The newest valid copy and its index, or None if no copy is valid."""
    best: tuple[BootEnv, int] | None = None
    for index, data in enumerate(copies):
        if data is None:
            continue
        try:
            env = decode(data)
        except StateError:
            continue
        if best is None or env.seq > best[0].seq:
            best = (env, index)
    return best
