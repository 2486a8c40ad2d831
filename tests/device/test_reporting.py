"""The pure halves of denial reporting: audit records into denials, denials into a complain
profile, events through the rate-limited outbox. (The sandbox tests hear the same
records from the real kernel; these pin the parsing of each record kind.)"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edgeward.device.apps import denials, egress, profile
from edgeward.device.apps.audit import FIELD_EXIT, FIELD_UID, Rule
from edgeward.device.apps.denials import Assembler, Denial, interpret
from edgeward.device.events import Outbox, SecurityEvent

# records as the kernel wrote them on this machine (Landlock ABI 7, audit on)
SHADOW = [
    (1300, 'audit(1795966515.760:2743): arch=c000003e syscall=257 success=no exit=-13 '
           'a0=ffffff9c a1=7ffda3ee5adc a2=0 a3=0 items=1 ppid=3326 pid=3327 auid=4294967295 '
           'uid=20000 gid=20000 euid=20000 comm="cat" exe="/usr/bin/cat" key="edgeward-deny"'),
    (1307, 'audit(1795966515.760:2743): cwd="/app"'),
    (1302, 'audit(1795966515.760:2743): item=0 name="/etc/shadow" inode=819 dev=fe:00 '
           'mode=0100640 ouid=0 ogid=42 nametype=NORMAL'),
    (1327, 'audit(1795966515.760:2743): proctitle=636174002F6574632F736861646F77'),
    (1320, 'audit(1795966515.760:2743): '),
]
LANDLOCK = [
    (1423, 'audit(1795966245.396:5): domain=1978fcd12 blockers=fs.read_file '
           'path="/etc/hostname" dev="vda" ino=739'),
    (1424, 'audit(1795966245.396:5): domain=1978fcd12 status=allocated mode=enforcing '
           'pid=2801 uid=20001 exe="/run/edgeward/confine" comm="edgeward-confin"'),
    (1300, 'audit(1795966245.396:5): arch=c000003e syscall=257 success=no exit=-13 '
           'a0=ffffff9c a1=7fff a2=0 a3=0 items=0 ppid=2753 pid=2801 auid=4294967295 '
           'uid=20001 gid=20001 comm="cat" exe="/usr/bin/cat" key=(null)'),
    (1320, 'audit(1795966245.396:5): '),
]
SECCOMP = [(1326, 'audit(1795966253.796:13): auid=4294967295 uid=20002 gid=20002 '
                  'ses=4294967295 pid=2910 comm="python3" exe="/usr/bin/python3.11" sig=0 '
                  'arch=c000003e syscall=165 compat=0 ip=0x7ffa32c8f829 code=0x50000')]
EGRESS = [
    (1300, 'audit(1795966300.001:77): arch=c000003e syscall=42 success=no exit=-1 a0=3 '
           'a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=40 uid=20003 gid=20003 comm="python3" '
           'exe="/usr/bin/python3.11" key="edgeward-deny"'),
    (1306, 'audit(1795966300.001:77): saddr=02001F90C0A800050000000000000000'),
    (1320, 'audit(1795966300.001:77): '),
]


def heard(records: list[tuple[int, str]]) -> Denial:
    assembler = Assembler()
    events = []
    for kind, text in records:
        events += assembler.feed(kind, text, 0.0)
    events += assembler.flush()
    found = [d for d in (interpret(e, assembler.domains) for e in events) if d]
    assert len(found) == 1, found
    return found[0]


def test_a_file_refused_by_permissions() -> None:
    d = heard(SHADOW)
    assert (d.uid, d.kind, d.access, d.target, d.mechanism, d.comm) == (
        20000, "file", "read", "/etc/shadow", "permissions", "cat")
    assert d.what == "read /etc/shadow denied (permissions)"


def test_a_file_refused_by_landlock_and_a_syscall_by_seccomp() -> None:
    d = heard(LANDLOCK)
    assert (d.uid, d.target, d.mechanism, d.access) == (20001, "/etc/hostname", "landlock",
                                                         "read")
    s = heard(SECCOMP)
    assert (s.uid, s.kind, s.target, s.allowed) == (20002, "syscall", "mount", False)
    logged = heard([(1326, SECCOMP[0][1].replace("code=0x50000", "code=0x7ffc0000"))])
    assert logged.allowed and logged.what == "system call mount would be denied (seccomp)"


def test_a_connection_refused_by_the_egress_filter() -> None:
    d = heard(EGRESS)
    assert (d.kind, d.access, d.target, d.mechanism) == ("network", "connect",
                                                         "192.168.0.5:8080", "egress")


def test_records_without_a_denial_are_not_reported() -> None:
    ok = [(1300, SHADOW[0][1].replace("success=no exit=-13", "success=yes exit=3")),
          (1320, SHADOW[-1][1])]
    probe = [(1300, SHADOW[0][1].replace("syscall=257", "syscall=21")), (1320, SHADOW[-1][1])]
    foreign = [(1300, SHADOW[0][1].replace('key="edgeward-deny"', 'key="someone-else"')),
               (1320, SHADOW[-1][1])]
    for records in (ok, probe, foreign):
        assembler = Assembler()
        events = [e for k, t in records for e in assembler.feed(k, t, 0.0)]
        assert all(interpret(e) is None for e in events + assembler.flush())


@given(st.text(max_size=300), st.integers(1000, 1500))
def test_any_record_text_is_parsed_without_error(text: str, kind: int) -> None:
    assembler = Assembler()
    for event in assembler.feed(kind, text, 0.0) + assembler.flush():
        interpret(event, assembler.domains)
    denials.fields(text)


def test_hex_encoded_names_are_decoded() -> None:
    record = denials.fields('name=2F746D702F6120622F nametype=NORMAL comm="a b"')
    assert record["name"] == "/tmp/a b/" and record["comm"] == "a b"
    assert denials.sockaddr("01002F72756E2F646275732F73797374656D5F6275735F736F636B657400") \
        == "/run/dbus/system_bus_socket"


def test_the_audit_rule_encoding() -> None:
    raw = Rule("edgeward-deny", (20000, 29999), ("openat",), 13).encode()
    flags, action, count = struct.unpack_from("=3I", raw)
    fields = struct.unpack_from("=64I", raw, 12 + 256)[:count]
    values = struct.unpack_from("=64I", raw, 12 + 512)[:count]
    assert (flags, action) == (4, 2) and FIELD_UID in fields and FIELD_EXIT in fields
    assert values[fields.index(FIELD_EXIT)] == (-13) & 0xFFFFFFFF
    assert raw.endswith(b"edgeward-deny")


def test_the_egress_program_has_one_block_per_entry() -> None:
    one = egress.program([egress.Allowed(ipaddress.ip_network("10.0.0.0/8"), 443)], False)
    two = egress.program([egress.Allowed(ipaddress.ip_network("10.0.0.0/8"), 443),
                          egress.Allowed(ipaddress.ip_network("192.0.2.1/32"), 0)], False)
    assert len(one) % 8 == 0 and len(two) > len(one)
    everything = egress.program([egress.Allowed(ipaddress.ip_network("0.0.0.0/0"), 0)], False)
    assert len(everything) == 8 * 4  # ctx, port, allow, exit: nothing unreachable after it
    names = egress.resolve([egress.Egress("api.example", 443), egress.Egress("10.1.0.0/16", 80)],
                           lookup=lambda host: ["192.0.2.7"], servers=["127.0.0.53"])
    assert {(str(a.network), a.port) for a in names} == {
        ("192.0.2.7/32", 443), ("10.1.0.0/16", 80), ("127.0.0.53/32", 53)}


def _seen(kind: str, access: str, target: str) -> Denial:
    return Denial(20000, kind, access, target, "complain", exe="/app/bin/x", time=1.0,
                  allowed=True)


def test_a_complain_profile_is_the_smallest_set() -> None:
    p = profile.Profile("minibar", "/data/edgeward/apps/minibar/data")
    assert p.observe(_seen("file", "read", "/usr/lib/python3.11/os.py")) is None
    assert p.observe(_seen("file", "write", "/data/edgeward/apps/minibar/data/x")) is None
    assert p.observe(_seen("file", "read-write", "/dev/ttyUSB0")) == "serial-port:ttyUSB0"
    assert p.observe(_seen("file", "write", "/run/edgeward/gpio/gpio17/value")) == "gpio:17"
    assert p.observe(_seen("file", "read", "/sys/class/net/eth0/address")) == \
        "hardware-observe"
    assert p.observe(_seen("file", "read", "/var/log/syslog")) == "log-observe"
    assert p.observe(_seen("network", "connect", "192.0.2.7:443")) == "192.0.2.7/32:443"
    assert p.observe(_seen("network", "bind", "0.0.0.0:8080")) == "network-bind"
    assert p.observe(_seen("network", "bind", "0.0.0.0:0")) is None
    assert p.observe(_seen("file", "read", "/etc/shadow")) == "denied"
    assert p.observe(_seen("syscall", "call", "mount")) == "denied"
    assert p.observe_bus("org.bluez") == "bluez"
    bwrap = Denial(20000, "file", "create", "/newroot/etc", "complain", exe="/usr/bin/bwrap",
                   allowed=True)
    assert p.observe(bwrap) is None  # the sandbox setting itself up is not the app
    out = p.to_dict("2.0")
    assert out["interfaces"] == ["bluez", "gpio:17", "hardware-observe", "log-observe",
                                 "network", "network-bind", "serial-port:ttyUSB0"]
    assert out["egress"] == ["192.0.2.7/32:443"]
    assert {d["what"] for d in out["denied"]} == {"read /etc/shadow", "system call mount"}
    text = profile.snippet(out)
    assert 'plugs = ["bluez", "gpio:17"' in text and 'allow = ["192.0.2.7/32:443"]' in text
    from edgeward.trust.appmanifest import parse

    manifest = parse(b'name = "minibar"\nversion = "2.0"\npublisher = "acme"\n'
                     b'summary = "m"\n' + text.encode())
    assert {str(x) for x in manifest.plugs} == set(out["interfaces"])


def test_the_outbox_limits_a_flood_and_says_so(tmp_path: Path) -> None:
    now = [0.0]
    box = Outbox(tmp_path / "spool.json", burst=5, rate=1.0, clock=lambda: now[0])
    for i in range(100):
        box.add(SecurityEvent(float(i * 10), "hog", "syscall", f"call {i}"))
    assert len(box.pending) == 5 and box.suppressed_total == 95
    box.add(SecurityEvent(1.0, "calm", "file", "read /etc/shadow denied"))  # its own bucket
    assert len(box.pending) == 6
    now[0] = 2.0
    box.add(SecurityEvent(2000.0, "hog", "syscall", "call again"))
    summary = [e for e in box.pending if e.kind == "suppressed"]
    assert len(summary) == 1 and summary[0].count == 95 and "95 more syscall" in summary[0].what


def test_identical_events_merge_and_the_spool_survives(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "spool.json")
    for _ in range(10):
        box.add(SecurityEvent(5.0, "minibar", "file", "read /etc/shadow denied"))
    assert len(box.pending) == 1 and box.pending[0].count == 10
    box.save()
    again = Outbox(tmp_path / "spool.json")
    batch = again.take()
    assert batch[0].count == 10 and again.ready.is_set()
    again.sent(batch)
    assert not (tmp_path / "spool.json").exists() and not again.pending


def test_cgroup_v2_limits_and_events_are_written_and_read(tmp_path: Path) -> None:
    """The v2 layout, on a directory shaped like one (this host's controllers are on v1,
    where the sandbox tests exercise them for real)."""
    from edgeward.device.apps import cgroups

    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    own = cgroups._own("").lstrip("/")
    base = tmp_path / own
    base.mkdir(parents=True, exist_ok=True)
    (base / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.subtree_control").write_text("")
    (base / "cgroup.procs").write_text("4242\n")  # the agent, as systemd started it
    group = cgroups.create("probe", 32 << 20, 0.5, 16, root=tmp_path)
    # it moved itself to a leaf, then handed the controllers down (v2's no-internal-
    # processes rule); the real files take "+memory +pids +cpu" as one write
    assert (base / cgroups.AGENT_LEAF / "cgroup.procs").read_text() == "4242"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert group.version == 2 and group.unified == tmp_path / own / "edgeward-app-probe"
    path = group.paths[0]
    assert (path / "memory.max").read_text() == str(32 << 20)
    assert (path / "pids.max").read_text() == "16"
    assert (path / "cpu.max").read_text() == "50000 100000"
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (path / "pids.events").write_text("max 3\n")
    (path / "cpu.stat").write_text("usage_usec 9\nnr_periods 20\nnr_throttled 15\n")
    assert cgroups.counters(group) == {"oom_kill": 1, "memory_max": 7, "pids_max": 3,
                                       "cpu_periods": 20, "cpu_throttled": 15}
    assert cgroups.existing("probe", root=tmp_path) == group


def test_nothing_is_counted_into_an_event_on_its_way(tmp_path: Path) -> None:
    box = Outbox(None)
    box.add(SecurityEvent(1.0, "hog", "syscall", "mount denied"))
    batch = box.take()
    wire = [e.to_dict() for e in batch]  # what the server gets
    box.add(SecurityEvent(1.5, "hog", "syscall", "mount denied"))  # while it is sent
    box.sent(batch)
    assert wire[0]["count"] == 1 and [e.count for e in box.pending] == [1]


def test_a_flooding_app_does_not_crowd_out_its_neighbour() -> None:
    now = [0.0]
    box = Outbox(None, clock=lambda: now[0])
    sent: list[SecurityEvent] = []
    for second in range(60):  # a minute of one app trying everything, all the time
        now[0] = float(second)
        for kind in ("syscall", "file", "network", "signal", "dbus"):
            for i in range(50):
                box.add(SecurityEvent(float(second), "hog", kind, f"{kind} {second} {i}"))
        box.add(SecurityEvent(float(second), "minibar", "file", f"minibar {second}"))
        batch = box.take()
        sent += batch
        box.sent(batch)
    now[0] = 100.0  # it calms down: what was held back is summed up
    box.flush_suppressed()
    sent += box.take()
    hog = [e for e in sent if e.app == "hog" and e.kind != "suppressed"]
    assert len(hog) <= box.app_burst + 60 * box.app_rate  # its own budget, all kinds
    assert sum(e.count for e in sent if e.app == "hog") == 15_000  # summarised, not lost
    assert len([e for e in sent if e.app == "minibar"]) == 60  # every one of the neighbour's


def test_no_audit_for_anyone_but_the_apps() -> None:
    """Task rules that switch auditing off for every other user's processes: loaded syscall
    rules would otherwise cost every process on the gateway at every call."""
    from edgeward.device.apps.monitor import quiet_rules

    below, above = quiet_rules((20000, 29999))
    for rule, low, high in ((below, 0, 19999), (above, 30000, 0xFFFFFFFE)):
        raw = rule.encode()
        flags, action, count = struct.unpack_from("=3I", raw)
        fields = struct.unpack_from("=64I", raw, 12 + 256)[:count]
        values = struct.unpack_from("=64I", raw, 12 + 512)[:count]
        assert (flags, action) == (1, 0)  # the task list, never
        assert list(zip(fields, values, strict=True))[:2] == [(FIELD_UID, low), (FIELD_UID, high)]


def test_a_profile_stays_bounded_however_much_an_app_tries() -> None:
    p = profile.Profile("nosy", "/data/nosy")
    for i in range(5000):
        p.observe(_seen("file", "read", f"/etc/secret-{i}"))
        p.observe(_seen("network", "connect", f"10.{i // 250}.{i % 250}.1:443"))
    out = p.to_dict()
    assert len(out["denied"]) <= profile.MAX_DENIED and len(out["egress"]) == profile.MAX_EGRESS
    assert sum(d["count"] for d in out["denied"]) == 5000  # counted all the same
