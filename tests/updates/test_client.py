"""The gateway's TUF client pieces: trust anchor, error mapping, resumable download."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors

from edgeward.board.virtual import VirtualBoard
from edgeward.device.updates.client import refused, shipped_root
from edgeward.device.updates.delta import affordable
from edgeward.errors import (
    IntegrityError,
    RollbackError,
    SecurityError,
    SignatureError,
    StateError,
    Unreachable,
)
from edgeward.trust import publication
from tests.updates.conftest import World


def test_a_rootfs_without_a_tuf_root_cannot_take_updates(gateway: VirtualBoard) -> None:
    # the plain test factory builds its release without --tuf-root
    with pytest.raises(StateError, match="ships no TUF root"):
        shipped_root(gateway, "a")


def test_the_trust_anchor_is_the_root_in_the_booted_rootfs(world: World) -> None:
    world.gateway("gw-1")
    shipped = shipped_root(world.boards["gw-1"], "a")
    assert shipped == world.ws.root_json.read_bytes()
    assert publication.parse(shipped, "root").signed.version == 1


@pytest.mark.parametrize(("error", "kind", "words"), [
    (tuf_errors.BadVersionNumberError("v3 < v4"), RollbackError, "rollback refused"),
    (tuf_errors.ExpiredMetadataError("timestamp expired"), SecurityError, "freeze attack"),
    (tuf_errors.UnsignedMetadataError("0/1 signatures"), SignatureError, "not signed"),
    (tuf_errors.LengthOrHashMismatchError("hash"), IntegrityError, "does not match"),
    (tuf_errors.DownloadLengthMismatchError("too long"), IntegrityError, "more data"),
    (tuf_errors.DownloadError("reset"), Unreachable, "download failed"),
])
def test_tuf_failures_say_what_was_refused(error: Exception, kind: type, words: str) -> None:
    mapped = refused(error, "TUF refresh")
    assert isinstance(mapped, kind)
    assert words in mapped.message and mapped.message.startswith("TUF refresh")


def test_a_delta_is_taken_only_if_its_base_fits_in_memory(tmp_path: Path) -> None:
    base = tmp_path / "rootfs.img"
    base.write_bytes(bytes(4 << 20))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1000000 kB\nMemAvailable:    5000 kB\n")
    assert not affordable(base, meminfo)  # 4 MiB base, 5 MB free: full image instead
    meminfo.write_text("MemAvailable:  100000 kB\n")
    assert affordable(base, meminfo)
    meminfo.write_text("garbage\n")
    assert not affordable(base, meminfo)


def test_a_delta_that_does_not_apply_leaves_nothing_behind(world: World) -> None:
    from edgeward.device.updates.delta import rebuild
    from edgeward.errors import ToolError
    from edgeward.trust.manifest import peek_kernel_bundle

    build = world.build("1.1.0", 2, base=world.factory.release.directory)
    base_kernel = peek_kernel_bundle(world.factory.release.kernel.read_bytes())
    new_kernel = peek_kernel_bundle(build.kernel.read_bytes())
    out = world.tmp / "rebuilt" / "rootfs.img"
    out.parent.mkdir()
    delta = build.delta()
    assert delta is not None
    rebuild(world.factory.release.rootfs, base_kernel.rootfs.data_size, delta,
            new_kernel.rootfs, out)
    assert out.read_bytes() == build.rootfs.read_bytes()  # data + rebuilt tree: exact
    garbage = world.tmp / "garbage.zst"
    garbage.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(64))
    out.unlink()
    with pytest.raises(ToolError, match="does not apply"):
        rebuild(world.factory.release.rootfs, base_kernel.rootfs.data_size, garbage,
                new_kernel.rootfs, out)
    assert list(out.parent.iterdir()) == []
