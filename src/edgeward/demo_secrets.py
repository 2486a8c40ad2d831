"""The demo's fourth part: a secret the fleet server delivers, and a flash that yields
nothing to whoever steals it.

- the hotel's tenant admin stores minibar's billing key on the fleet server (encrypted
  there under the tenant's envelope key); gw-0001's agent, attested, receives it sealed
  to its identity key and puts it in minibar's encrypted folder; minibar reads it in its
  sandbox (``/run/secrets/billing-key``) and signs in to its cloud with it;
- the thief takes gw-0001's flash out (powered off): not one of the known plaintexts
  (the billing key, minibar's and hvac's code, the agent's state) is in it, nor any key;
- the tampered gateway no longer boots; its recovery key, escrowed by its agent at the
  factory, fetched by the tenant admin (audited), opens its data area without a boot.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.api_client import ApiClient
from edgeward.board.virtual import VirtualBoard
from edgeward.device.boot.chain import boot
from edgeward.device.storage import recovery, volume
from edgeward.errors import Error

SECRET_NAME = "billing-key"  # noqa: S105 (the name of a secret, not one)


@dataclass
class SecretStory:
    gateway: str = ""
    secret_version: int = 0
    signed_in: int = 0  # minibar's reports its cloud accepted with the delivered key
    flash_bytes: int = 0
    markers: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    rebooted_unlocked: bool = False
    recovered: str = ""
    recovery_audited: bool = False

    @property
    def ok(self) -> bool:
        return (self.secret_version == 1 and self.signed_in > 0 and self.flash_bytes > 0
                and len(self.markers) >= 3 and not self.found and self.rebooted_unlocked
                and bool(self.recovered) and self.recovery_audited)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def new_billing_key() -> str:
    return "bk_" + secrets.token_urlsafe(24)


def store_secret(ops: ApiClient, value: str, say: Callable[[str], None]) -> int:
    answer = ops.call("PUT", f"/v1/secrets/minibar/{SECRET_NAME}", {"value": value})
    say(f"secrets: the hotel stored minibar's {SECRET_NAME} on the fleet server (version "
        f"{answer['version']}); only attested gateways receive it, sealed to each one")
    return int(answer["version"])


CHUNK = 8 << 20


def scan(flash: Path, markers: dict[str, bytes]) -> tuple[int, list[str]]:
    """Read every byte under ``flash`` as a thief would (a hole reads as zeros, so only
    the data extents are read); return how many were read and which markers appear."""
    os.sync()
    longest, found, total = max(map(len, markers.values())), set(), 0
    for path in sorted(p for p in flash.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            fd, offset = f.fileno(), 0
            while True:
                try:
                    start = os.lseek(fd, offset, os.SEEK_DATA)
                except OSError:  # ENXIO: no data after offset
                    break
                end, tail = os.lseek(fd, start, os.SEEK_HOLE), b""
                while start < end:
                    block = os.pread(fd, min(CHUNK, end - start), start)
                    if not block:
                        break
                    window = tail + block
                    found |= {name for name, text in markers.items() if text in window}
                    tail, start, total = window[-longest:], start + len(block), \
                        total + len(block)
                offset = end
    return total, sorted(found)


def stolen_flash(story: SecretStory, device: Path, markers: dict[str, bytes],
                 say: Callable[[str], None]) -> None:
    """Power ``device`` off, read its whole flash, look for the plaintexts; boot again."""
    board = VirtualBoard.open(device)
    board.power_off()
    story.flash_bytes, story.found = scan(board.root / "flash", markers)
    story.markers = sorted(markers)
    say(f"stolen flash: {device.name} powered off and its flash read whole "
        f"({story.flash_bytes >> 20} MiB of data, fuses left on the SoC): "
        + (f"[red]found {', '.join(story.found)}[/]" if story.found else
           f"none of {len(markers)} known plaintexts ({', '.join(sorted(markers))}) in it"))
    report = boot(board)  # in its own board, after a verified boot: all there again
    story.rebooted_unlocked = report.verdict == "booted" and volume.unlocked(board)
    say(f"{device.name}: booted again, data area unlocked without a human: "
        f"{story.rebooted_unlocked}")


def recover(story: SecretStory, ops: ApiClient, device: Path,
            say: Callable[[str], None]) -> None:
    """The gateway that no longer boots: its data area, opened with the escrowed key."""
    serial = device.name
    key = ops.call("GET", f"/v1/gateways/{serial}/recovery-key")["recovery_key"]
    audit = ops.call("GET", "/v1/audit?limit=50")
    story.recovery_audited = any("recovery" in str(e.get("action", "")) and
                                 serial in str(e) for e in audit)
    board = VirtualBoard.open(device)
    try:
        recovery.recover(board, key)
        story.recovered = serial if (board.data_dir / "identity").is_dir() else ""
    except Error as e:
        say(f"recovery of {serial} failed: {e.message}")
    finally:
        board.power_off()
    say(f"recovery: {serial} does not boot; the tenant admin fetched its escrowed recovery "
        f"key (audited: {story.recovery_audited}) and opened its data area with it: "
        f"{bool(story.recovered)}")
