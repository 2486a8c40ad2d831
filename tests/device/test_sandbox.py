"""An app command in its real sandbox: bubblewrap namespaces, its own unprivileged user,
no capabilities, no_new_privs, Landlock to exactly what it is granted, the seccomp
allow-list, cgroup limits, the egress filter; and every refusal heard by the agent's
audit monitor."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from edgeward.device.apps import cgroups, interfaces, launch, sandbox
from edgeward.device.apps.syscalls import ALLOWED, FORBIDDEN
from tests.device.sandboxing import USER, App, Reports

MOUNT = ("python3 -c 'import ctypes,os; l=ctypes.CDLL(None,use_errno=True); "
         "r=l.syscall(165,b\"x\",b\"/tmp\",b\"tmpfs\",0,0); "
         "print(\"mount\", r, os.strerror(ctypes.get_errno()))'")


def test_the_app_runs_as_its_own_user_without_privileges(app: App) -> None:
    code, out = app.run("id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
                        "/proc/self/status; echo pid=$$; hostname")
    assert code == 0, out
    lines = out.split()
    assert lines[0] == str(USER.uid) and lines[1] == str(USER.gid)
    status = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    assert status["CapEff"] == "0000000000000000" and status["CapBnd"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    pid = int(next(word for word in lines if word.startswith("pid="))[4:])
    assert pid < 10  # its own PID namespace
    assert lines[-1] == "probe"  # its own UTS namespace


def test_the_system_is_read_only_and_readable_only_where_granted(app: App,
                                                                 reports: Reports) -> None:
    outside = app.root / "agent-state"
    outside.write_text("not for apps")
    outside.chmod(0o644)  # readable by file permissions: only Landlock stands in the way
    code, out = app.run(f"cat /etc/passwd >/dev/null && echo passwd; cat {outside}; "
                        "ls /app >/dev/null && echo app; echo x > $HOME/mine && echo wrote; "
                        "touch /app/x || echo ro-app; touch /usr/x || echo ro-usr; "
                        "cat /etc/shadow || echo no-shadow")
    assert "passwd" in out and "app" in out and "wrote" in out
    assert "ro-app" in out and "ro-usr" in out and "no-shadow" in out
    assert "not for apps" not in out
    assert (app.data / "mine").stat().st_uid == USER.uid
    landlock = reports.wait(lambda d: d.target == str(outside))
    assert (landlock.kind, landlock.access, landlock.mechanism) == ("file", "read", "landlock")
    shadow = reports.wait(lambda d: d.target == "/etc/shadow")
    assert shadow.access == "read" and shadow.comm == "cat" and not shadow.allowed
    reports.wait(lambda d: d.target.startswith("/usr") and d.mechanism == "read-only")


def test_forbidden_calls_are_denied_and_reported(app: App, reports: Reports) -> None:
    assert not set(FORBIDDEN) & set(ALLOWED)
    code, out = app.run(f"unshare -U true && echo UNSHARED; {MOUNT}")
    assert "UNSHARED" not in out
    assert "mount -1 Operation not permitted" in out
    mount = reports.wait(lambda d: d.target == "mount")
    assert (mount.kind, mount.mechanism, mount.allowed) == ("syscall", "seccomp", False)
    assert mount.what == "system call mount denied (seccomp)"
    reports.wait(lambda d: d.target == "unshare")


NESTED = ("python3 -c 'import ctypes,os; l=ctypes.CDLL(None,use_errno=True); "
          "r=l.syscall({nr}, 0x10000000|0x40000000|17, 0, 0, 0, 0); "  # NEWUSER|NEWNET|SIGCHLD
          "print(\"clone\", r, os.strerror(ctypes.get_errno()))'")


def test_no_namespaces_of_its_own_making(app: App, reports: Reports) -> None:
    """No nested user namespace (where a process has every capability again, and
    reaches the kernel code most exploits go through): not by unshare, not by clone."""
    nr = {"x86_64": 56, "aarch64": 220}[os.uname().machine]
    code, out = app.run(f"{NESTED.format(nr=nr)}; unshare -U -n true || echo no-unshare; "
                        "grep CapEff /proc/self/status")
    assert "clone -1 Operation not permitted" in out and "no-unshare" in out, out
    assert "CapEff:\t0000000000000000" in out
    reports.wait(lambda d: d.target == "clone" and d.mechanism == "seccomp")
    code, out = app.run("python3 -c 'import threading, subprocess; "
                        "t = threading.Thread(target=print, args=(\"thread\",)); t.start(); "
                        "print(subprocess.run([\"echo\", \"child\"]).returncode)'")
    assert "thread" in out and "0" in out  # threads and children as usual (clone3 falls back)


SOCKETS = ("python3 -c 'import socket\n"
           "for name, args in [(\"tcp\", (2, 1, 0)), (\"udp\", (10, 2, 17)), (\"unix\", (1, 1, 0)),"
           " (\"route\", (16, 3, 0)), (\"icmp\", (2, 2, 1)), (\"udplite\", (2, 2, 136)),"
           " (\"sctp\", (2, 5, 132)), (\"diag\", (16, 3, 4)), (\"vsock\", (40, 1, 0)),"
           " (\"packet\", (17, 3, 0)), (\"raw\", (2, 3, 1))]:\n"
           " try:\n  socket.socket(*args).close(); print(name, \"open\")\n"
           " except OSError as e: print(name, e.errno)'")


def test_only_tcp_udp_unix_and_route_sockets(app: App, reports: Reports) -> None:
    """The egress filter sees TCP and UDP: ICMP, UDP-Lite, SCTP, raw, packet, vsock and
    other netlink sockets would pass it by, so they are not to be had."""
    code, out = app.run(SOCKETS, b'plugs = ["network"]\n')
    result = dict(line.split() for line in out.strip().splitlines())
    assert {k for k, v in result.items() if v == "open"} == {"tcp", "udp", "unix", "route"}, out
    assert all(v == "1" for k, v in result.items() if v != "open"), out  # EPERM
    reports.wait(lambda d: d.target == "socket" and d.mechanism == "seccomp")


def test_complain_mode_logs_and_allows(app: App, reports: Reports) -> None:
    query = ("python3 -c 'import ctypes; l=ctypes.CDLL(None); "
             "print(\"persona\", l.syscall(135, 0xffffffff))'")  # personality(): not allowed
    code, out = app.run(query)
    assert "persona -1" in out
    reports.wait(lambda d: d.target == "personality" and not d.allowed)
    code, out = app.run(query, complain=True)
    assert "persona 0" in out, out  # let through to the kernel, which answers
    logged = reports.wait(lambda d: d.target == "personality" and d.allowed)
    assert logged.what == "system call personality would be denied (seccomp)"


def test_no_network_without_the_plug(app: App) -> None:
    script = "cat /proc/net/dev | tail -n +3 | cut -d: -f1"
    code, out = app.run(script)
    assert out.split() == ["lo"]
    code, out = app.run(script, b'plugs = ["network"]\n')
    assert out.split() != ["lo"]


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    """Two TCP listeners on the loopback: one the app may reach, one it may not."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    stop = threading.Event()

    def serve(s: socket.socket) -> None:
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = s.accept()
                conn.sendall(b"hello\n")
                conn.close()
            except OSError:
                continue

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in socks]
    for t in threads:
        t.start()
    try:
        yield socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        stop.set()
        for t in threads:
            t.join()
        for s in socks:
            s.close()


def test_egress_reaches_only_the_allow_list(app: App, reports: Reports,
                                            servers: tuple[int, int]) -> None:
    allowed, other = servers
    connect = ("python3 -c 'import socket,sys\nfor p in sys.argv[1:]:\n try:\n"
               "  s=socket.create_connection((\"127.0.0.1\",int(p)),2); print(p, s.recv(9))\n"
               " except OSError as e: print(p, e)' " f"{allowed} {other}")
    manifest = (b'plugs = ["network"]\n[egress]\nallow = ["127.0.0.1/32:'
                + str(allowed).encode() + b'"]\n')
    code, out = app.run(connect, manifest)
    assert f"{allowed} b'hello\\n'" in out, out
    assert f"{other} [Errno 1] Operation not permitted" in out, out
    blocked = reports.wait(lambda d: d.kind == "network")
    assert blocked.target == f"127.0.0.1:{other}" and blocked.mechanism == "egress"
    assert blocked.access == "connect"
    code, out = app.run(connect, b'plugs = ["network"]\n')  # no allow-list: nowhere
    assert f"{allowed} [Errno 1]" in out


def test_binding_needs_network_bind(app: App, reports: Reports) -> None:
    bind = ("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); "
            "print(\"ephemeral\"); s=socket.socket(); s.bind((\"127.0.0.1\", 18089)); "
            "print(\"bound\")'")
    code, out = app.run(bind, b'plugs = ["network"]\n')
    assert "ephemeral" in out and "bound" not in out and "Permission denied" in out
    refused = reports.wait(lambda d: d.access == "bind")
    assert refused.target.endswith(":18089") and refused.mechanism == "landlock"
    code, out = app.run(bind, b'plugs = ["network", "network-bind"]\n')
    assert "bound" in out, out
    udp = ("python3 -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
           "s.bind((\"::\", 0)); print(\"ephemeral\"); s=socket.socket(type=socket.SOCK_DGRAM); "
           "s.bind((\"0.0.0.0\", 18090)); print(\"bound\")'")
    code, out = app.run(udp, b'plugs = ["network"]\n')  # Landlock sees TCP only
    assert "ephemeral" in out and "bound" not in out and "Operation not permitted" in out
    udp_refused = reports.wait(lambda d: d.access == "bind" and d.target.endswith(":18090"))
    assert udp_refused.mechanism == "not network-bind"
    code, out = app.run(udp, b'plugs = ["network", "network-bind"]\n')
    assert "bound" in out, out


def test_memory_and_pids_limits_hold(app: App) -> None:
    grab = "python3 -c 'b = bytearray({} * 1024 * 1024); print(\"allocated\")'"
    code, out = app.run(grab.format(100), b'[resources]\nmemory = "256M"\n')
    assert code == 0 and "allocated" in out  # room enough: it runs
    before = cgroups.counters(cgroups.existing("probe"))
    code, out = app.run(grab.format(200), b'[resources]\nmemory = "32M"\n')
    assert code == 137 and "allocated" not in out  # killed at its 32 MiB limit
    assert cgroups.counters(cgroups.existing("probe"))["oom_kill"] > before["oom_kill"]
    code, out = app.run("for i in $(seq 20); do sleep 1 & done; wait; echo done",
                        b'[resources]\npids = 8\n', name="forker")  # a cgroup of its own
    assert "Cannot fork" in out, out
    assert cgroups.counters(cgroups.existing("forker"))["pids_max"] > 0
    group = cgroups.create("probe", 32 << 20, 0.5, 8)
    assert group.paths and all(p.exists() for p in group.paths)
    assert group == cgroups.existing("probe")


def test_an_interface_not_granted_is_not_given(app: App) -> None:
    script = "cat /proc/net/dev | tail -n +3 | cut -d: -f1"
    plan = app.plan(script, b'plugs = ["network"]\n', granted=set())
    assert plan.withheld == ("network",) and plan.granted == ()
    withheld = launch.run(plan, USER)
    assert withheld.stdout.decode().split() == ["lo"]  # asked for, not granted: no network
    given = launch.run(app.plan(script, b'plugs = ["network"]\n', granted={"network"}), USER)
    assert given.stdout.decode().split() != ["lo"]


def test_the_plan_is_the_interfaces_rules() -> None:
    from edgeward.trust.appmanifest import parse

    m = parse(b'name = "probe"\nversion = "1"\npublisher = "acme"\nsummary = "p"\n'
              b'plugs = ["serial-port:ttyUSB0", "log-observe", "bluez", "network-manager"]\n')
    from pathlib import Path

    plan = sandbox.plan(m, Path("/i"), Path("/d"), ["bin/x"],
                        {"serial-port:ttyUSB0", "bluez"}, sandbox.Peripherals())
    assert plan.granted == ("serial-port:ttyUSB0", "bluez")
    assert plan.withheld == ("log-observe", "network-manager")
    assert plan.rules.devices == (*interfaces.PRIVATE_DEVICES, "/dev/ttyUSB0")
    assert plan.rules.groups == ("dialout",)
    assert plan.rules.dbus == ("org.bluez",) and "/var/log" not in plan.rules.read
    assert plan.needs_bus and not plan.shares_network


def test_the_sandboxs_own_devices_and_tmp_are_usable(app: App, reports: Reports) -> None:
    code, out = app.run("head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null; "
                        "python3 -c \"open('/dev/null').isatty()\"; "
                        "echo x > /dev/full; echo t > /tmp/t && cat /tmp/t; "
                        "head -c 4 /dev/urandom | wc -c")
    assert out.split("\n")[0].strip() == "4" and "null" in out, out
    assert "I/O error" in out  # /dev/full as it should be (ENOSPC), not "denied"
    assert "\nt\n" in out and "Permission denied" not in out, out
    time.sleep(0.5)
    assert reports.whats() == []  # nothing an ordinary program does is reported
