"""Each interface grants exactly its rules, for real: a serial port (a pseudo-terminal
plugged into the virtual board), a GPIO line, /sys (hardware-observe), /var/log
(log-observe); and an app that was not granted one meets a refusal the agent hears."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device.apps import reconcile, runner, users
from edgeward.device.apps.monitor import Monitor
from tests.conftest import REQUIRE_REAL
from tests.device.apps_side import install
from tests.device.sandboxing import Reports, need_root

PROBE = {"bin/probe": '#!/bin/sh\nexec /bin/sh -c "$1"\n'}
MANIFEST = '[commands.probe]\nexec = "bin/probe"\n'


class Heard(Reports):
    def __init__(self) -> None:
        super().__init__()
        self.monitor = Monitor(self.add)


@pytest.fixture
def heard() -> Iterator[Heard]:
    need_root()
    reports = Heard()
    reports.monitor.start()
    try:
        yield reports
    finally:
        reports.monitor.stop()


def _app(board: VirtualBoard, heard: Heard, plugs: list[str], grants: list[str]) -> None:
    """The app ``gadget`` asking for ``plugs``, granted ``grants`` (recorded as the agent
    records the operator's grants), its denials attributed to it."""
    install(board, "gadget", PROBE, f"plugs = {plugs!r}\n".replace("'", '"') + MANIFEST)
    reconcile._grant(board, "gadget", grants)
    heard.monitor.watch(users.user_for(board, "gadget").uid, "gadget")


def _run(board: VirtualBoard, script: str) -> str:
    done = runner.run(board, "gadget", "probe", [script])
    return done.stdout.decode() + done.stderr.decode()


@pytest.fixture
def ptys(board: VirtualBoard) -> Iterator[list[int]]:
    """Two serial ports plugged in: ttyUSB0 and ttyUSB1 (pseudo-terminals); the masters
    are the test's end of the wire."""
    masters = []
    for name in ("ttyUSB0", "ttyUSB1"):
        master, slave = os.openpty()
        board.attach_serial(name, Path(os.ttyname(slave)))
        os.close(slave)
        masters.append(master)
    try:
        yield masters
    finally:
        for fd in masters:
            os.close(fd)


def test_a_serial_port_granted_and_one_not(board: VirtualBoard, heard: Heard,
                                           ptys: list[int]) -> None:
    _app(board, heard, ["serial-port:ttyUSB0", "serial-port:ttyUSB1"],
         ["serial-port:ttyUSB0"])
    out = _run(board, "printf 'hello\\n' > /dev/ttyUSB0 && echo sent; "
                      "printf 'x' > /dev/ttyUSB1 || echo refused")
    assert "sent" in out and "refused" in out, out
    ready, _, _ = select.select([ptys[0]], [], [], 5)
    assert ready and b"hello" in os.read(ptys[0], 100)
    refused = heard.wait(lambda d: d.target == "/dev/ttyUSB1")
    assert refused.mechanism == "landlock" and refused.access == "write"


def test_no_serial_port_without_the_interface(board: VirtualBoard, heard: Heard,
                                              ptys: list[int]) -> None:
    _app(board, heard, [], [])
    out = _run(board, "printf 'x' > /dev/ttyUSB0 || echo refused")
    assert "refused" in out
    refused = heard.wait(lambda d: d.target == "/dev/ttyUSB0")
    assert refused.mechanism == "permissions"  # not even in the dialout group


def test_a_gpio_line_granted_and_one_not(board: VirtualBoard, heard: Heard) -> None:
    line17, line18 = board.add_gpio_line(17), board.add_gpio_line(18)
    _app(board, heard, ["gpio:17", "gpio:18"], ["gpio:17"])
    out = _run(board, "echo 1 > /run/edgeward/gpio/gpio17/value && echo set; "
                      "echo 1 > /run/edgeward/gpio/gpio18/value || echo refused")
    assert "set" in out and "refused" in out, out
    assert (line17 / "value").read_text() == "1\n" and (line18 / "value").read_text() == "0\n"
    heard.wait(lambda d: d.target.startswith("/run/edgeward/gpio/gpio18"))
    # the line is the app's now: a link it leaves there must not make root hand it more
    secret = board.root / "secret"
    secret.write_text("root's")
    (line17 / "direction").unlink()
    (line17 / "direction").symlink_to(secret)
    _run(board, "true")
    assert secret.stat().st_uid == 0


@pytest.mark.parametrize(("plug", "path"), [
    ("hardware-observe", "/sys/devices/virtual/net/lo/type"),
    ("log-observe", "/var/log/dpkg.log")])
def test_the_observe_interfaces(board: VirtualBoard, heard: Heard, plug: str,
                                path: str) -> None:
    if not os.path.exists(path):
        if REQUIRE_REAL:
            pytest.fail(f"{path} is not on this machine and EDGEWARD_REQUIRE_REAL=1")
        pytest.skip(f"{path} is not on this machine")
    _app(board, heard, [plug], [])
    out = _run(board, f"head -c 1 {path} >/dev/null && echo read || echo refused")
    assert "refused" in out
    heard.wait(lambda d: d.target == path and d.mechanism == "landlock")
    reconcile._grant(board, "gadget", [plug])
    out = _run(board, f"head -c 1 {path} >/dev/null && echo read || echo refused")
    assert "read" in out, out
