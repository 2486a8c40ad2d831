"""A private system bus for the D-Bus tests, and the stand-in services on it.

The bus is a real dbus-daemon with a system-bus-like configuration written to a
directory under /var/tmp (pytest's tmp directories are 0700: app users could not reach
a socket there), listening on a unix socket there, with a permissive policy: any user
may connect, own any name and call anything, as a test system bus would.

dbus-daemon does not answer a connection whose uid has no entry in the user database
(it looks up the user's groups to apply its policy), so the daemon runs in a mount
namespace of its own (bubblewrap, as root) where /etc/passwd and /etc/group also list
the test app users: the host's own files are left alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeward.device.apps import sandbox
from tests.conftest import REQUIRE_REAL, require_tool, scratch_dir
from tests.device.sandboxing import USER, need_root

OTHER = sandbox.AppUser(23457, 23457)  # another app's user
REPO = Path(__file__).resolve().parents[2]
CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def _line(stream: int, timeout: float) -> bytes:
    """One line from a pipe, or what came before it ended or the time ran out."""
    data = b""
    end = time.monotonic() + timeout
    while not data.endswith(b"\n") and time.monotonic() < end:
        readable, _, _ = select.select([stream], [], [], max(0.0, end - time.monotonic()))
        chunk = os.read(stream, 4096) if readable else b""
        if not chunk:
            break
        data += chunk
    return data


@dataclass
class Bus:
    root: Path
    socket: Path
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"


@contextlib.contextmanager
def running_bus() -> Iterator[Bus]:
    """A private system bus for as long as the block runs."""
    need_root()
    daemon = require_tool("dbus-daemon")
    bwrap = require_tool("bwrap")
    root = scratch_dir("edgeward-dbus-")
    root.chmod(0o755)
    socket = root / "system_bus_socket"
    (root / "system.conf").write_text(CONFIG.format(socket=socket))
    users = "".join(f"edgeward-test-{u.uid}:x:{u.uid}:{u.gid}::/nonexistent:/usr/sbin/nologin\n"
                    for u in (USER, OTHER))
    groups = "".join(f"edgeward-test-{u.gid}:x:{u.gid}:\n" for u in (USER, OTHER))
    (root / "passwd").write_text(Path("/etc/passwd").read_text() + users)
    (root / "group").write_text(Path("/etc/group").read_text() + groups)
    said = (root / "daemon.log").open("wb")  # its warnings (e.g. "Failed to set fd limit")
    process = subprocess.Popen(
        [bwrap, "--dev-bind", "/", "/", "--ro-bind", str(root / "passwd"), "/etc/passwd",
         "--ro-bind", str(root / "group"), "/etc/group", "--die-with-parent", "--",
         daemon, f"--config-file={root / 'system.conf'}", "--nofork", "--print-address=1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=said)
    said.close()
    assert process.stdout is not None
    try:
        address = _line(process.stdout.fileno(), 10).decode()
        if not address.startswith(f"unix:path={socket}"):
            process.kill()
            process.wait()
            pytest.fail(f"dbus-daemon did not start: {address!r} "
                        f"{(root / 'daemon.log').read_text(errors='replace')}")
        yield Bus(root, socket, process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_bus() -> Iterator[Bus]:
    with running_bus() as bus:
        yield bus


class Services:
    """The BlueZ and NetworkManager stand-ins (tests/device/dbus_services.py), each a
    real bus client in a process of its own, recording every call that reaches it."""

    KINDS = ("bluez", "network-manager")

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.processes: list[subprocess.Popen[bytes]] = []

    def record(self, kind: str) -> Path:
        return self.bus.root / f"{kind}.calls"

    def start(self) -> None:
        for kind in self.KINDS:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.device.dbus_services", kind, self.bus.address,
                 str(self.record(kind))], cwd=REPO, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.processes.append(process)
            assert process.stdout is not None
            said = _line(process.stdout.fileno(), 20)
            if said.strip() != b"ready":
                pytest.fail(f"the {kind} stand-in did not start: {said.decode()}")

    def calls(self, kind: str) -> list[dict[str, object]]:
        path = self.record(kind)
        return [json.loads(line) for line in path.read_text().splitlines()] \
            if path.exists() else []

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


@contextlib.contextmanager
def running_services(bus: Bus) -> Iterator[Services]:
    """The stand-ins on ``bus`` for as long as the block runs."""
    if importlib.util.find_spec("jeepney") is None:
        message = "jeepney is not installed (run scripts/bootstrap)"
        if REQUIRE_REAL:
            pytest.fail(message + " and EDGEWARD_REQUIRE_REAL=1")
        pytest.skip(message)
    running = Services(bus)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def services(private_bus: Bus) -> Iterator[Services]:
    with running_services(private_bus) as running:
        yield running
