"""``edgeward device update --now`` in a process of its own, for power-loss tests.

Usage::

    python tests/updates/update_child.py DEVICE SERVER_URL [--download-delay S] ...

It runs the real command (``edgeward device update --device DEVICE --server
SERVER_URL --now --json``) after widening chosen windows of the update so the
test that SIGKILLs this process can hit them: per-MiB pauses while the rootfs
downloads (``--download-delay``), while a slot is written to flash
(``--write-delay``) and while a booting rootfs is verified (``--boot-delay``);
a pause before the written slot is verified (``--verify-delay``), before the
try-boot is written to the boot environment (``--stage-delay``), before the
health check of the trial boot (``--health-delay``) and before a fused counter
is burnt (``--burn-delay``). Nothing in the update's logic is replaced: every
wrapper sleeps, then calls the original.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MiB = 1 << 20


def _pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def swap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``make(original)``."""
    setattr(owner, name, make(getattr(owner, name)))


def widen(args: argparse.Namespace) -> None:
    from edgeward.board import virtual
    from edgeward.device import agent
    from edgeward.device.updates import installer

    def slow_download(real: Callable[..., Path]) -> Callable[..., Path]:
        def download(http: Any, url: str, part: Path, length: int,
                     progress: Callable[[int, int], None] | None = None, **kw: Any) -> Path:
            seen = [part.stat().st_size if part.exists() else 0]

            def slow(done: int, total: int) -> None:  # chunks come as received: per byte
                got = done - seen[0] if done >= seen[0] else done
                seen[0] = done
                _pause(args.download_delay * got / MiB)
                if progress is not None:
                    progress(done, total)

            return real(http, url, part, length, slow, **kw)

        return download

    def slow_write(real: Callable[[Path], Iterator[bytes]]) -> Callable[[Path], Iterator[bytes]]:
        def chunks(src: Path) -> Iterator[bytes]:
            for block in real(src):
                yield block
                _pause(args.write_delay * len(block) / MiB)

        return chunks

    def slow_boot(real: Callable[..., Any]) -> Callable[..., Any]:
        def boot_chain(board: Any, progress: Callable[[int, int], None] | None = None) -> Any:
            def slow(done: int, total: int) -> None:  # called per MiB of rootfs verified
                _pause(args.boot_delay)
                if progress is not None:
                    progress(done, total)

            return real(board, slow)

        return boot_chain

    def pause_before(seconds: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def make(real: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*a: Any, **kw: Any) -> Any:
                _pause(seconds)
                return real(*a, **kw)

            return wrapper

        return make

    swap(installer, "download", slow_download)  # the target downloads (.part files)
    swap(virtual, "_chunks", slow_write)  # what VirtualBoard.write streams to flash
    swap(agent, "boot_chain", slow_boot)  # the agent's reboot into the new slot
    swap(installer, "verify_slot", pause_before(args.verify_delay))
    swap(installer, "stage", pause_before(args.stage_delay))
    swap(agent.Agent, "health", pause_before(args.health_delay))
    swap(virtual.VirtualBoard, "advance_security_version", pause_before(args.burn_delay))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("device")
    parser.add_argument("server")
    for name in ("download", "write", "boot", "verify", "stage", "health", "burn"):
        parser.add_argument(f"--{name}-delay", type=float, default=0.0)
    args = parser.parse_args()
    widen(args)
    from edgeward.cli.main import main as edgeward

    edgeward(["device", "update", "--device", args.device, "--server", args.server, "--now",
              "--json"])


if __name__ == "__main__":
    main()
