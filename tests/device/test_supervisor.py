"""The supervisor, for real: daemons in their sandboxes started after boot, restarted with
backoff, stopped on a crash loop (and that reported), limits reported, logs kept, an
operator's stop remembered; and the control socket the CLI reaches it through."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device.apps import control, logsink, store
from edgeward.device.apps.control import ControlServer
from edgeward.device.apps.supervisor import Settings, Supervisor, saved_status
from edgeward.device.events import SecurityEvent
from edgeward.errors import InputError, StateError
from tests.device.apps_side import install
from tests.device.sandboxing import need_root

FAST = Settings(backoff_base=0.05, backoff_cap=0.2, crash_limit=3, crash_window=30,
                stable=30, stop_timeout=2, tick=0.05)
SERVE = "#!/bin/sh\necho serving as $(id -u)\necho oops >&2\nexec sleep 300\n"


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def events() -> list[SecurityEvent]:
    return []


@pytest.fixture
def supervisor(board: VirtualBoard, events: list[SecurityEvent]) -> Iterator[Supervisor]:
    need_root()
    sup = Supervisor(board, events.append, settings=FAST)
    try:
        yield sup
    finally:
        sup.close()


def state(sup: Supervisor, app: str) -> str:
    return str(sup.status(app)[0]["state"])


def test_daemons_start_after_boot_and_log(board: VirtualBoard, supervisor: Supervisor) -> None:
    install(board, "minibar", {"bin/serve": SERVE}, '[daemons.serve]\nexec = "bin/serve"\n'
            '[commands.once]\nexec = "bin/serve"\n')
    supervisor.start()
    assert [u["daemon"] for u in supervisor.status()] == ["serve"]  # a command is no daemon
    wait_for(lambda: state(supervisor, "minibar") == "running")
    log = store.apps_dir(board) / "minibar" / "logs" / "serve.log"
    wait_for(lambda: log.exists() and "oops" in log.read_text())
    lines = logsink.tail(log, 10)
    assert any(line.endswith("out serving as 20000") for line in lines), lines
    assert any(line.endswith("err oops") for line in lines)
    assert oct(log.stat().st_mode & 0o777) == "0o600" and log.stat().st_uid == 0
    pid = supervisor.status("minibar")[0]["pid"]
    supervisor.stop_app("minibar")
    assert state(supervisor, "minibar") == "stopped"
    assert not os.path.exists(f"/proc/{pid}")
    assert saved_status(board)[0]["state"] == "stopped"
    supervisor.start_app("minibar")
    assert state(supervisor, "minibar") == "running"


def test_a_crash_loop_is_stopped_and_reported(board: VirtualBoard, supervisor: Supervisor,
                                              events: list[SecurityEvent]) -> None:
    install(board, "hvac", {"bin/crash": "#!/bin/sh\necho dying\nexit 3\n"},
            '[daemons.ctl]\nexec = "bin/crash"\n')
    supervisor.start()
    wait_for(lambda: state(supervisor, "hvac") == "crash-loop")
    unit = supervisor.status("hvac")[0]
    assert unit["restarts"] == FAST.crash_limit - 1 and unit["last_exit"] == 3
    loop = [e for e in events if e.kind == "crash-loop"]
    assert len(loop) == 1 and loop[0].app == "hvac"
    assert "crashed 3 times" in loop[0].what and "exited with 3" in loop[0].what
    time.sleep(0.5)
    assert state(supervisor, "hvac") == "crash-loop"  # left stopped: no more restarts
    supervisor.start_app("hvac")  # an operator may try again
    assert supervisor.status("hvac")[0]["state"] in ("running", "backoff", "crash-loop")


def test_restart_policies(board: VirtualBoard, supervisor: Supervisor) -> None:
    install(board, "once", {"bin/ok": "#!/bin/sh\nexit 0\n"},
            '[daemons.aaa]\nexec = "bin/ok"\nrestart = "on-failure"\n'
            '[daemons.bbb]\nexec = "bin/ok"\nrestart = "always"\n'
            '[daemons.ccc]\nexec = "bin/ok"\nrestart = "never"\n')
    supervisor.start()
    wait_for(lambda: {u["daemon"]: u["state"] for u in supervisor.status("once")}["aaa"]
             == "stopped")
    wait_for(lambda: {u["daemon"]: u["restarts"] for u in supervisor.status("once")}["bbb"]
             >= 2)
    units = {u["daemon"]: u for u in supervisor.status("once")}
    assert units["aaa"]["restarts"] == 0 and units["ccc"]["state"] == "stopped"


def test_hitting_the_memory_limit_is_reported(board: VirtualBoard, supervisor: Supervisor,
                                              events: list[SecurityEvent]) -> None:
    install(board, "hog", {"bin/eat": "#!/bin/sh\nexec python3 -c 'b = bytearray(200 << 20)'\n"},
            '[resources]\nmemory = "32M"\n[daemons.eat]\nexec = "bin/eat"\n')
    supervisor.start()
    wait_for(lambda: any(e.kind == "limit" for e in events))
    limit = next(e for e in events if e.kind == "limit")
    assert limit.app == "hog" and "memory limit" in limit.what
    wait_for(lambda: any(e.kind == "crash-loop" for e in events))


def test_an_operator_stop_is_remembered(board: VirtualBoard,
                                        events: list[SecurityEvent]) -> None:
    need_root()
    install(board, "minibar", {"bin/serve": SERVE}, '[daemons.serve]\nexec = "bin/serve"\n')
    first = Supervisor(board, events.append, settings=FAST)
    first.start()
    first.stop_app("minibar")
    first.close()
    second = Supervisor(board, events.append, settings=FAST)
    try:
        second.start()
        time.sleep(0.3)
        assert state(second, "minibar") == "stopped"
        second.start_app("minibar")
        assert state(second, "minibar") == "running"
    finally:
        second.close()
    assert saved_status(board)[0]["state"] == "stopped"  # the agent stopped: all stop


def test_the_control_socket(board: VirtualBoard, supervisor: Supervisor) -> None:
    install(board, "minibar", {"bin/serve": SERVE}, '[daemons.serve]\nexec = "bin/serve"\n')
    with pytest.raises(StateError, match="agent is not running"):
        control.call(board, "status")
    supervisor.start()
    server = ControlServer(board, {"status": lambda r: supervisor.status(r.get("app")),
                                   "stop": lambda r: supervisor.stop_app(r["app"])})
    try:
        path = control.socket_path(board)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert control.call(board, "status", app="minibar")[0]["daemon"] == "serve"
        assert control.call(board, "stop", app="minibar")[0]["state"] == "stopped"
        with pytest.raises(InputError, match="not installed"):
            control.call(board, "stop", app="nope")
        with pytest.raises(InputError, match="unknown request"):
            control.call(board, "reboot")
    finally:
        server.close()
    assert not control.socket_path(board).exists()


def test_spinning_at_the_cpu_limit_is_reported(board: VirtualBoard, supervisor: Supervisor,
                                               events: list[SecurityEvent]) -> None:
    install(board, "spinner", {"bin/spin": "#!/bin/sh\nwhile :; do :; done\n"},
            '[resources]\ncpu = 0.1\n[daemons.spin]\nexec = "bin/spin"\n')
    supervisor.start()
    wait_for(lambda: any(e.kind == "limit" and e.app == "spinner" for e in events))
    cpu = next(e for e in events if e.kind == "limit")
    assert cpu.what == "CPU limit reached: throttled" and cpu.detail["limit"] == "cpu"
    assert cpu.detail["throttled"] * 2 >= cpu.detail["periods"]
    assert state(supervisor, "spinner") == "running"  # throttled, not stopped
