"""The D-Bus interfaces for real: a private dbus-daemon, BlueZ and NetworkManager
stand-ins on it (jeepney, in processes of their own), the app's xdg-dbus-proxy running
as the app's user, and the app calling the bus with dbus-send from inside its sandbox.
Plus the log parser on lines xdg-dbus-proxy 0.1.4 really printed."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edgeward.device.apps import dbus, launch, sandbox
from edgeward.device.apps.dbus import BusCall, LogParser, Proxy
from edgeward.errors import NotAvailable, StateError, ToolError
from tests.conftest import require_tool
from tests.device.dbusbus import OTHER, Bus, Services, private_bus, services  # noqa: F401
from tests.device.sandboxing import USER, App

NM = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
CALL_BLUEZ = ("dbus-send --system --print-reply --dest=org.bluez /org/bluez/hci0 "
              "org.bluez.Adapter1.StartDiscovery && echo DISCOVERING; "
              "dbus-send --system --print-reply --dest=org.bluez /org/bluez/hci0 "
              "org.freedesktop.DBus.Properties.Get string:org.bluez.Adapter1 "
              "string:Discovering; ")
CALL_NM = (f"dbus-send --system --print-reply --dest={NM} {NM_PATH} {NM}.Enable "
           "boolean:false && echo NM-ENABLED || echo NM-REFUSED; ")
LIST_NAMES = ("dbus-send --system --print-reply --dest=org.freedesktop.DBus "
              "/org/freedesktop/DBus org.freedesktop.DBus.ListNames; ")


class Heard:
    """What a proxy handed to on_call, with a way to wait for it."""

    def __init__(self) -> None:
        self.calls: list[BusCall] = []
        self.cond = threading.Condition()

    def add(self, call: BusCall) -> None:
        with self.cond:
            self.calls.append(call)
            self.cond.notify_all()

    def wait(self, match: Callable[[BusCall], bool], timeout: float = 5.0) -> BusCall:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                found = next((c for c in self.calls if match(c)), None)
                if found is not None:
                    return found
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no call matched; heard: {self.calls}")
                self.cond.wait(left)


@pytest.fixture
def proxy_tools() -> None:
    require_tool("xdg-dbus-proxy")
    require_tool("dbus-send")


@contextmanager
def proxied(app: App, bus: Bus, script: str, manifest: bytes, granted: set[str] | None,
            complain: bool = False) -> Iterator[tuple[Proxy, Heard, sandbox.Plan]]:
    """The app's proxy, as the agent starts it for a plan: the D-Bus names of the
    interfaces it was granted, complain mode as planned, as the app's own user."""
    heard = Heard()
    plan = app.plan(script, manifest, granted=granted, complain=complain)
    proxy = Proxy(plan.app, bus.address, app.root / "run" / "bus", plan.rules.dbus,
                  plan.complain, USER, heard.add)
    proxy.start()
    try:
        yield proxy, heard, dataclasses.replace(plan, bus_socket=proxy.socket)
    finally:
        proxy.stop()


def run(plan: sandbox.Plan) -> tuple[int, str]:
    done = launch.run(plan, USER, timeout=30)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


# -- the app in its sandbox, through its proxy -------------------------------------------

@pytest.mark.usefixtures("proxy_tools")
def test_bluez_is_reached_and_network_manager_refused_and_reported(
        app: App, private_bus: Bus, services: Services) -> None:  # noqa: F811
    with proxied(app, private_bus, CALL_BLUEZ + CALL_NM + LIST_NAMES,
                 b'plugs = ["bluez"]\n', {"bluez"}) as (proxy, heard, plan):
        assert proxy.talk == ("org.bluez",) and plan.needs_bus
        code, out = run(plan)
        refused = heard.wait(lambda c: c.destination == NM)
    assert "DISCOVERING" in out and "boolean true" in out, out  # the reply came back
    assert [c["member"] for c in services.calls("bluez")] == ["StartDiscovery", "Get"]
    assert "NM-REFUSED" in out and "ServiceUnknown" in out and "NM-ENABLED" not in out
    assert services.calls("network-manager") == []  # never reached the service
    assert refused == BusCall(NM, NM, "Enable", NM_PATH, refused=True)
    assert not [c for c in heard.calls if c.destination == "org.bluez"]
    listed = out.split("array [", 1)[1]  # the app's view of the bus: BlueZ, not NM
    assert '"org.bluez"' in listed and NM not in listed
    report = dbus.denial(refused, USER.uid)
    assert (report.kind, report.access, report.mechanism, report.allowed) == \
        ("dbus", "call", "dbus-proxy", False)
    assert report.target == f"{NM}.Enable on {NM}"
    assert report.what == f"call {NM}.Enable on {NM} denied (dbus-proxy)"


@pytest.mark.usefixtures("proxy_tools")
def test_network_manager_granted_is_reached(app: App, private_bus: Bus,  # noqa: F811
                                            services: Services) -> None:  # noqa: F811
    with proxied(app, private_bus, CALL_NM + CALL_BLUEZ, b'plugs = ["network-manager"]\n',
                 {"network-manager"}) as (proxy, heard, plan):
        assert proxy.talk == (NM,)
        code, out = run(plan)
        heard.wait(lambda c: c.destination == "org.bluez")  # not plugged: hidden
    assert "NM-ENABLED" in out, out
    assert services.calls("network-manager") == [
        {"sender": services.calls("network-manager")[0]["sender"], "path": NM_PATH,
         "interface": NM, "member": "Enable", "body": [False]}]
    assert services.calls("bluez") == [] and "DISCOVERING" not in out
    assert all(c.refused for c in heard.calls)
    assert not [c for c in heard.calls if c.destination == NM]


@pytest.mark.usefixtures("proxy_tools")
def test_a_plug_withheld_is_refused_and_reported(app: App, private_bus: Bus,  # noqa: F811
                                                 services: Services) -> None:  # noqa: F811
    manifest = b'plugs = ["bluez", "network-manager"]\n'
    with proxied(app, private_bus, CALL_NM + CALL_BLUEZ, manifest, {"bluez"}) \
            as (proxy, heard, plan):
        assert plan.withheld == ("network-manager",) and proxy.talk == ("org.bluez",)
        code, out = run(plan)
        refused = heard.wait(lambda c: c.destination == NM)
    assert "NM-REFUSED" in out and "DISCOVERING" in out, out
    assert services.calls("network-manager") == []
    assert (refused.interface, refused.member, refused.refused) == (NM, "Enable", True)


@pytest.mark.usefixtures("proxy_tools")
def test_complain_mode_lets_calls_through_and_reports_them(
        app: App, private_bus: Bus, services: Services) -> None:  # noqa: F811
    with proxied(app, private_bus, CALL_NM + CALL_BLUEZ, b"", None, complain=True) \
            as (proxy, heard, plan):
        assert proxy.process is not None
        args = list(proxy.process.args)  # type: ignore[arg-type]
        assert "--filter" in args and "--talk=org.freedesktop.*" in args
        code, out = run(plan)
        enable = heard.wait(lambda c: c.destination == NM)
        discovery = heard.wait(lambda c: c.destination == "org.bluez")
    assert "NM-ENABLED" in out and "DISCOVERING" in out, out
    assert [c["member"] for c in services.calls("network-manager")] == ["Enable"]
    assert not enable.refused and not discovery.refused
    assert (discovery.interface, discovery.member) == ("org.bluez.Adapter1", "StartDiscovery")
    report = dbus.denial(enable, USER.uid)
    assert report.allowed and report.what == f"call {NM}.Enable on {NM} would be denied " \
                                             "(dbus-proxy)"


@pytest.mark.usefixtures("proxy_tools")
def test_the_proxy_runs_as_the_app_user_and_only_it_reaches_the_socket(
        app: App, private_bus: Bus, services: Services) -> None:  # noqa: F811
    with proxied(app, private_bus, "true", b'plugs = ["bluez"]\n', {"bluez"}) \
            as (proxy, heard, plan):
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{proxy.process.pid}/status").read_text().splitlines())
        assert status["Uid"].split() == [str(USER.uid)] * 4
        assert status["Gid"].split() == [str(USER.gid)] * 4
        assert status["Groups"].split() == []
        folder = proxy.socket.parent.stat()
        assert (folder.st_uid, folder.st_mode & 0o777) == (USER.uid, 0o700)
        assert proxy.socket.stat().st_uid == USER.uid
        call = ["dbus-send", f"--bus=unix:path={proxy.socket}", "--print-reply",
                "--dest=org.bluez", "/org/bluez/hci0", "org.bluez.Adapter1.StartDiscovery"]
        other = subprocess.run(call, user=OTHER.uid, group=OTHER.gid, extra_groups=[],
                               capture_output=True, text=True, timeout=30, check=False)
        assert other.returncode != 0 and "Permission denied" in other.stderr, other.stderr
        own = subprocess.run(call, user=USER.uid, group=USER.gid, extra_groups=[],
                             capture_output=True, text=True, timeout=30, check=False)
        assert own.returncode == 0, own.stderr
    assert not proxy.alive and not proxy.socket.exists()  # stop() ended it, cleaned up
    assert len(services.calls("bluez")) == 1


@pytest.mark.usefixtures("proxy_tools")
def test_killing_the_proxy_makes_bus_calls_fail_cleanly(
        app: App, private_bus: Bus, services: Services) -> None:  # noqa: F811
    with proxied(app, private_bus, CALL_BLUEZ, b'plugs = ["bluez"]\n', {"bluez"}) \
            as (proxy, heard, plan):
        code, out = run(plan)
        assert "DISCOVERING" in out, out
        assert proxy.process is not None
        proxy.process.kill()
        proxy.process.wait()
        assert not proxy.alive
        started = time.monotonic()
        code, out = run(plan)
        assert time.monotonic() - started < 10  # an error at once, no hang
    assert "DISCOVERING" not in out and "Connection refused" in out, out
    assert len(services.calls("bluez")) == 2  # StartDiscovery and Get, the first time only
    assert not proxy.socket.exists()


@pytest.mark.usefixtures("proxy_tools")
def test_a_missing_or_unreachable_bus_is_a_clear_error(
        tmp_path: Path, app: App, private_bus: Bus,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    where = app.root / "dbus" / "bus"

    def start(bus: str, talk: tuple[str, ...] = ("org.bluez",)) -> None:
        Proxy("probe", bus, where, talk, False, USER, lambda _: None, timeout=5).start()

    with pytest.raises(NotAvailable, match="no D-Bus system bus at /var/tmp/nowhere/bus"):
        start("unix:path=/var/tmp/nowhere/bus")
    stale = private_bus.root / "stale"  # a socket nobody listens on any more
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    os.chmod(stale, 0o777)  # noqa: S103 (as a bus socket is, so the app user may try it)
    with pytest.raises(NotAvailable, match="does not answer the app user 23456 through its "
                                           "proxy: Failed to connect to bus.*refused"):
        start(f"unix:path={stale}")
    assert not where.exists()  # the proxy that could not reach it is gone, and its socket
    with pytest.raises(ToolError, match="xdg-dbus-proxy for probe exited .*not a valid dbus"):
        start(private_bus.address, ("not a bus name",))
    foreign = app.root / "foreign"  # root's: not a place for the app's socket
    foreign.mkdir()
    with pytest.raises(StateError, match="must be a directory of uid 23456 alone"):
        Proxy("probe", private_bus.address, foreign / "bus", (), False, USER,
              lambda _: None).start()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="Debian package xdg-dbus-proxy"):
        start(private_bus.address)


# -- the parser, on what xdg-dbus-proxy 0.1.4 printed ----------------------------------

GRANTED_AND_HIDDEN = """\
C1: -> org.freedesktop.DBus call org.freedesktop.DBus.Hello at /org/freedesktop/DBus
C2: -> org.freedesktop.DBus fake AddMatch for org.bluez
C3: -> org.freedesktop.DBus fake GetNameOwner for org.bluez
B1: <- org.freedesktop.DBus return from C1
C4: -> org.bluez call org.bluez.Adapter1.StartDiscovery at /org/bluez/hci0
B2: <- org.freedesktop.DBus signal org.freedesktop.DBus.NameAcquired at /org/freedesktop/DBus
B3: <- org.freedesktop.DBus return from C2
*SKIPPED*
B4: <- org.freedesktop.DBus return from C3
*SKIPPED*
B4: <- :1.0 return from C4
C1: -> org.freedesktop.DBus call org.freedesktop.DBus.Hello at /org/freedesktop/DBus
C2: -> org.freedesktop.DBus fake AddMatch for org.bluez
C3: -> org.freedesktop.DBus fake GetNameOwner for org.bluez
B1: <- org.freedesktop.DBus return from C1
B2: <- org.freedesktop.DBus signal org.freedesktop.DBus.NameAcquired at /org/freedesktop/DBus
C4: -> org.freedesktop.NetworkManager call org.freedesktop.NetworkManager.Enable \
at /org/freedesktop/NetworkManager
*HIDDEN* (ping)
B3: <- org.freedesktop.DBus return from C2
*SKIPPED*
B4: <- org.freedesktop.DBus return from C3
*SKIPPED*
B5: <- (no sender) return from C4
*REWRITTEN*
"""
STARTED = BusCall("org.bluez", "org.bluez.Adapter1", "StartDiscovery", "/org/bluez/hci0", False)
ENABLE = BusCall(NM, NM, "Enable", NM_PATH, True)

SEEN_NOT_TALKED = """\
C6: -> org.freedesktop.NetworkManager call org.freedesktop.NetworkManager.Enable \
at /org/freedesktop/NetworkManager
*DENIED* (ping)
B4: <- org.freedesktop.DBus return from C3
*SKIPPED*
C6: -> org.freedesktop.NetworkManager signal com.example.Sig.Boom at /foo
*DENIED*
C6: -> all signal com.example.Sig.Boom at /foo
C4: -> org.freedesktop.NetworkManager signal com.example.Sig.Boom at /foo
*HIDDEN*
"""

BUS_ITSELF = """\
C4: -> org.freedesktop.DBus call org.freedesktop.DBus.GetNameOwner at /org/freedesktop/DBus
Filtering message due to arg0 org.freedesktop.NetworkManager, policy: 0 (required 1)
B5: <- (no sender) return from C4
*REWRITTEN*
C4: -> org.freedesktop.DBus call org.freedesktop.DBus.StartServiceByName at /org/freedesktop/DBus
Filtering message due to arg0 org.freedesktop.NetworkManager, policy: 0 (required 2)
*HIDDEN* (ping)
C4: -> org.freedesktop.DBus call org.freedesktop.DBus.ListNames at /
B5: <- org.freedesktop.DBus return from C4
C6: -> org.freedesktop.DBus call org.freedesktop.DBus.Foo at /org/freedesktop/DBus

** (process:20428): WARNING **: 15:44:51.783: Unknown bus method Foo
*DENIED* (ping)
C6: -> org.freedesktop.DBus call org.freedesktop.DBus.BecomeMonitor at /org/freedesktop/DBus
*DENIED* (ping)
C6: -> org.freedesktop.DBus call org.freedesktop.DBus.AddMatch at /org/freedesktop/DBus
*DENIED* (ping)
"""

COMPLAIN = """\
C1: -> org.freedesktop.DBus call org.freedesktop.DBus.Hello at /org/freedesktop/DBus
C2: -> org.freedesktop.DBus fake wildcarded AddMatch for org.freedesktop
C3: -> org.freedesktop.DBus fake wildcarded AddMatch for org.bluez
C4: -> org.freedesktop.DBus fake ListNames
B1: <- org.freedesktop.DBus return from C1
B5: <- org.freedesktop.DBus return from C4
C5: -> org.freedesktop.DBus fake GetNameOwner for org.freedesktop.DBus
C7: -> org.freedesktop.DBus fake GetNameOwner for org.freedesktop.NetworkManager
*SKIPPED*
C8: -> org.freedesktop.NetworkManager call org.freedesktop.NetworkManager.Enable \
at /org/freedesktop/NetworkManager
B6: <- org.freedesktop.DBus return from C5
*SKIPPED*
B4: <- :1.2 return from C8
C8: -> com.example.Gone call com.example.Gone.Hi at /x
*HIDDEN* (ping)
B9: <- (no sender) return from C8
*REWRITTEN*
"""


def test_the_parser_tells_calls_let_through_from_refused() -> None:
    assert dbus.parse(GRANTED_AND_HIDDEN) == [STARTED, ENABLE]
    assert dbus.parse(SEEN_NOT_TALKED) == [
        ENABLE, BusCall(NM, "com.example.Sig", "Boom", "/foo", True, "signal"),
        BusCall(NM, "com.example.Sig", "Boom", "/foo", True, "signal")]
    assert dbus.parse(COMPLAIN) == [
        dataclasses.replace(ENABLE, refused=False),
        BusCall("com.example.Gone", "com.example.Gone", "Hi", "/x", True)]


def test_the_parser_skips_the_bus_itself_unless_it_refused_something() -> None:
    calls = dbus.parse(BUS_ITSELF)
    assert [(c.member, c.about, c.refused) for c in calls] == [
        ("StartServiceByName", NM, True), ("Foo", "", True), ("BecomeMonitor", "", True),
        ("AddMatch", "", True)]
    assert calls[0].method == f"org.freedesktop.DBus.StartServiceByName({NM})"
    parser = LogParser()
    parser.feed(BUS_ITSELF)
    assert "Unknown bus method Foo" in parser.notes


def test_the_parser_reads_partial_and_interleaved_lines() -> None:
    whole = GRANTED_AND_HIDDEN + SEEN_NOT_TALKED + BUS_ITSELF + COMPLAIN
    parser = LogParser()
    calls: list[BusCall] = []
    for i in range(0, len(whole), 7):  # chunks that split lines anywhere
        calls += parser.feed(whole[i:i + 7])
    assert calls + parser.close() == dbus.parse(whole)
    # two apps' connections through one proxy: their messages interleave, never their
    # lines (the proxy is one thread and prints a verdict right after its message)
    a = GRANTED_AND_HIDDEN.splitlines(keepends=True)
    b = COMPLAIN.splitlines(keepends=True)
    mixed = "".join(a[:5] + b[:9] + a[5:15] + b[9:] + a[15:])
    assert sorted(map(repr, dbus.parse(mixed))) == \
        sorted(map(repr, dbus.parse(GRANTED_AND_HIDDEN) + dbus.parse(COMPLAIN)))


def test_a_call_waits_for_its_verdict_until_flushed() -> None:
    parser = LogParser()
    line = f"C4: -> {NM} call {NM}.Enable at {NM_PATH}\n"
    assert parser.feed(line) == []  # a verdict may be on its way
    assert parser.flush() == [dataclasses.replace(ENABLE, refused=False)]
    assert parser.feed(line) == [] and parser.feed("*HIDDEN* (ping)\n") == [ENABLE]
    assert parser.feed(line[:20]) == [] and parser.close() == []  # a torn last line


def test_a_forged_log_line_cannot_hide_a_refusal() -> None:
    # A hidden call's path is printed as the app sent it: the app can start new lines.
    forged = (f"C4: -> {NM} call {NM}.Enable at /x\n"
              "B9: <- :1.0 return from C4\n"  # ... a reply that settles the call,
              "*HIDDEN* (ping)\n"  # but the proxy's verdict still comes, and counts
              f"C5: -> {NM} call {NM}.Enable at /x\n"
              f"C6: -> org.bluez call org.bluez.Adapter1.StartDiscovery at {'/a' * 40000}\n"
              "*DENIED* (ping)\n")
    calls = dbus.parse(forged)
    assert [c.refused for c in calls] == [False, True, False, True]
    assert calls[1].destination == "?" and calls[1].kind == "message"
    assert calls[3].destination == "?"  # an overlong line is not read, its refusal is
    assert dbus.denial(calls[1], USER.uid).target == "a message on ?"


def test_wildcards_cover_every_namespace_on_the_bus() -> None:
    assert dbus.wildcards([":1.4", "org.freedesktop.DBus", NM, "org.bluez",
                           "fi.w1.wpa_supplicant1", "not-a-name"]) == (
        "fi.w1.*", "org.bluez.*", "org.freedesktop.*")
