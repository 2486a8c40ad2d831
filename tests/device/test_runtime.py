"""The apps' runtime in the agent, for real, on what goes wrong: a power cycle (images
mounted again only if they still check out), an app removed while it runs, bad control
requests, a full data area."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from edgeward.api_client import ApiClient
from edgeward.board.virtual import VirtualBoard
from edgeward.device.apps import cgroups, control, store
from edgeward.device.apps.runtime import AppRuntime
from edgeward.device.events import SecurityEvent
from tests.device.apps_side import install
from tests.device.sandboxing import need_root

SERVE = {"bin/serve": "#!/bin/sh\nexec sleep 300\n"}
DAEMON = '[daemons.serve]\nexec = "bin/serve"\n'


def _nowhere() -> ApiClient:  # a fleet server that is away: reports stay queued
    return ApiClient("https://127.0.0.1:9", ssl.create_default_context())


@pytest.fixture
def runtime(board: VirtualBoard) -> Iterator[AppRuntime]:
    need_root()
    made = AppRuntime(board, _nowhere)
    try:
        yield made
    finally:
        made.close()


def _pending(runtime: AppRuntime) -> list[SecurityEvent]:
    return list(runtime.outbox.pending)


def _running(runtime: AppRuntime, app: str) -> bool:
    return any(u["state"] == "running" for u in runtime.supervisor.status(app))


def test_after_a_power_cycle_images_are_mounted_again_only_if_they_check_out(
        board: VirtualBoard, runtime: AppRuntime) -> None:
    good = install(board, "minibar", SERVE, DAEMON)
    bad = install(board, "hvac", SERVE, DAEMON)
    for app in (good, bad):  # the power went: nothing is mounted any more
        store.unmount(app.root)
    image = bad.root.parent / store.IMAGE
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 1  # someone with the flash in hand
    image.write_bytes(bytes(data))
    runtime.start()
    assert store.mounted(good.root) and not store.mounted(bad.root)
    end = time.monotonic() + 10
    while not _running(runtime, "minibar"):
        assert time.monotonic() < end
        time.sleep(0.05)
    refused = [e for e in _pending(runtime) if e.app == "hvac"]
    assert refused and "no longer matches what TUF vouched for" in refused[0].what
    assert not _running(runtime, "hvac")


def test_an_app_removed_while_it_runs_leaves_nothing_behind(board: VirtualBoard,
                                                            runtime: AppRuntime) -> None:
    install(board, "minibar", SERVE, DAEMON)
    runtime.start()
    end = time.monotonic() + 10
    while not _running(runtime, "minibar"):
        assert time.monotonic() < end
        time.sleep(0.05)
    group = cgroups.existing("minibar")
    assert group.members()
    runtime.forget("minibar")
    store.remove(board, "minibar")
    assert runtime.supervisor.status("minibar") == []
    assert not any(p.exists() for p in group.paths)
    assert not (store.apps_dir(board) / "minibar").exists()


def test_bad_control_requests_leave_the_agent_answering(board: VirtualBoard,
                                                        runtime: AppRuntime) -> None:
    install(board, "minibar", SERVE, DAEMON)
    runtime.start()
    for raw in (b'{"op": "start"}\n', b'{"op": "stop", "app": 7}\n', b"[1, 2]\n",
                b"\xff\xfe\n", b'{"op": "status", "app": {"a": 1}}\n'):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(control.socket_path(board)))
            s.sendall(raw)
            answer = json.loads(s.makefile("rb").readline())
        assert answer["ok"] is False and answer["error"]
    assert control.call(board, "status", app="minibar")[0]["daemon"] == "serve"


def test_a_full_data_area_does_not_stop_the_reports(board: VirtualBoard,
                                                    runtime: AppRuntime) -> None:
    runtime.outbox.spool = board.root / "not-a-folder" / "spool"  # unwritable, like a full disk
    (board.root / "not-a-folder").write_text("a file in the way")
    runtime.outbox.add(SecurityEvent(time.time(), "minibar", "file", "read /etc/shadow"))
    runtime.outbox.save()  # no exception: they stay in memory
    assert [e.what for e in _pending(runtime)] == ["read /etc/shadow"]
