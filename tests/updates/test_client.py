"""The gateway's TUF client pieces: trust anchor, error mapping, resumable download."""

from __future__ import annotations

import pytest
from tuf.api import exceptions as tuf_errors

from edgeward.board.virtual import VirtualBoard
from edgeward.device.updates.client import refused, shipped_root
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
