"""The hardening audit's pure checks, each on a bad input and a good one, and the
collector's reading of a real directory tree (links, includes, the walk's cap)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from passlib.hash import des_crypt, md5_crypt, sha256_crypt, sha512_crypt

from edgeward.board.fuses import FuseState
from edgeward.device.hardening import accounts, collect, console, permissions, services, sshd
from edgeward.device.hardening.checks import Inputs, audit, fuses
from edgeward.device.hardening.finding import Finding, summary
from edgeward.device.hardening.permissions import FileRecord
from edgeward.device.hardening.services import Allowed, Listener, parse_allowed
from edgeward.device.hardening.sshd_config import parse
from edgeward.errors import InputError
from edgeward.release.osimage import CMDLINE


def checks(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings]


# --- findings ---------------------------------------------------------------------------


def test_a_finding_round_trips_and_a_malformed_one_is_refused() -> None:
    f = Finding("ssh.x11", "low", "SSH forwards X11", "/etc/ssh/sshd_config line 3", "no")
    assert Finding.from_dict(f.to_dict()) == f
    with pytest.raises(InputError, match="unknown field"):
        Finding.from_dict({**f.to_dict(), "extra": 1})
    with pytest.raises(InputError, match="severity"):
        Finding.from_dict({**f.to_dict(), "severity": "critical"})
    with pytest.raises(InputError):
        Finding.from_dict(["not", "an", "object"])


def test_text_quoted_from_the_gateway_is_one_bounded_line() -> None:
    f = Finding("console.getty", "high", "t", "inittab: \x1b[2J\nforged line" + "x" * 5000, "a")
    assert "\n" not in f.detail and "\x1b" not in f.detail and len(f.detail) == 1024
    assert Finding.from_dict(f.to_dict()) == f


# --- consoles -------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "T0:23:respawn:/sbin/getty -L ttyS0 115200 vt100",  # SysV
    "ttyAMA0::respawn:/sbin/getty -L 115200 ttyAMA0 vt100",  # busybox
    "::respawn:/sbin/getty -L console 0 vt100",
    "S1:2345:respawn:/sbin/agetty -8 -L ttymxc1 115200 linux",
])
def test_a_getty_on_a_serial_console_in_inittab_is_high(line: str) -> None:
    found = console.inittab(f"# comment\n{line}\n")
    assert checks(found) == ["console.getty"] and found[0].severity == "high"
    assert "/etc/inittab line 2" in found[0].detail


def test_a_shell_on_the_console_is_flagged_but_a_script_is_not() -> None:
    assert checks(console.inittab("::askfirst:-/bin/sh\n")) == ["console.shell"]
    assert console.inittab("::respawn:/bin/sh /etc/init.d/watchdog\n") == []


def test_inittab_without_console_logins_passes() -> None:
    assert console.inittab("# edgeward: no login on any console\n") == []
    assert console.inittab("T0:23:off:/sbin/getty -L ttyS0 115200 vt100\n"
                           "::sysinit:/etc/init.d/rcS\nid:3:initdefault:\n") == []
    assert [f.severity for f in console.inittab("1:2345:respawn:/sbin/getty 38400 tty1")] \
        == ["low"]


def test_systemd_serial_getty_and_debug_shell_are_high_unless_masked() -> None:
    wants = "/etc/systemd/system/getty.target.wants"
    enabled = [f"{wants}/serial-getty@ttyS0.service", f"{wants}/getty@tty1.service",
               "/etc/systemd/system/sysinit.target.wants/debug-shell.service",
               "/etc/systemd/system/multi-user.target.wants/ssh.service"]
    found = console.systemd_units(enabled)
    assert sorted((f.check, f.severity) for f in found) == [
        ("console.debug-shell", "high"), ("console.getty", "high"),
        ("console.getty-vt", "low")]
    assert console.systemd_units(enabled, masked=["serial-getty@ttyS0.service",
                                                  "getty@tty1.service",
                                                  "debug-shell.service"]) == []


@pytest.mark.parametrize(("arg", "check"), [
    ("console=ttyS0,115200n8", "console.cmdline"),
    ("console=ttyAMA0", "console.cmdline"),
    ("init=/bin/sh", "cmdline.init-shell"),
    ("single", "cmdline.single-user"),
    ("systemd.unit=emergency.target", "cmdline.single-user"),
    ("systemd.debug_shell", "cmdline.debug-shell"),
    ("kgdboc=ttyS0,115200", "cmdline.kgdb"),
    ("selinux=0", "cmdline.lsm-off"),
    ("earlycon=uart8250,mmio32,0x1c28000", "console.earlycon"),
])
def test_kernel_command_line(arg: str, check: str) -> None:
    assert checks(console.cmdline(f"{CMDLINE} {arg}")) == [check]


def test_the_shipped_command_line_and_a_screen_console_pass() -> None:
    assert console.cmdline(CMDLINE) == []
    assert console.cmdline(f"console=tty0 console=null {CMDLINE} quiet") == []


# --- accounts ---------------------------------------------------------------------------


def shadow_line(account: str, field: str) -> str:
    return f"{account}:{field}:19000:0:99999:7:::"


def test_an_empty_password_is_high_and_locked_accounts_pass() -> None:
    text = "\n".join([shadow_line("root", "*"), shadow_line("edgeward", "!"),
                      shadow_line("daemon", "!!"), shadow_line("old", "!" + sha512_crypt
                                                               .using(rounds=5000)
                                                               .hash("root")),
                      shadow_line("guest", "")])
    found = accounts.shadow(text)
    assert checks(found) == ["accounts.empty-password"]
    assert "account guest" in found[0].detail and "line 5" in found[0].detail
    assert checks(accounts.passwd("pi::1000:1000::/home/pi:/bin/sh\n")) == [
        "accounts.empty-password"]
    assert accounts.passwd("root:x:0:0:root:/root:/usr/sbin/nologin\n+::::::\n") == []


@pytest.mark.parametrize("hashed", [
    sha512_crypt.using(rounds=5000).hash("raspberry"),
    sha256_crypt.using(rounds=5000).hash("admin"),
    md5_crypt.hash("ubnt"),
    des_crypt.hash("1234"),
])
def test_a_known_default_password_is_found_with_the_hash_s_own_scheme(hashed: str) -> None:
    found = accounts.shadow(shadow_line("pi", hashed))
    assert checks(found) == ["accounts.default-password"]
    assert "raspberry" not in found[0].detail  # the finding never repeats the password


def test_the_account_name_as_password_is_a_default_and_root_gets_a_note() -> None:
    own = sha512_crypt.using(rounds=5000).hash("operator")
    assert checks(accounts.shadow(shadow_line("operator", own))) == [
        "accounts.default-password"]
    strong = sha512_crypt.using(rounds=5000).hash("c0rrect-h0rse-battery-staple")
    assert checks(accounts.shadow(shadow_line("root", strong))) == ["accounts.root-password"]
    assert accounts.shadow(shadow_line("operator", strong)) == []


@pytest.mark.parametrize("hashed", [
    "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",  # yescrypt
    "$6$rounds=999999999$saltsalt$" + "a" * 86,  # too dear to try
    "$6$not-a-valid-hash",
])
def test_a_hash_that_cannot_be_checked_is_said_so(hashed: str) -> None:
    assert checks(accounts.shadow(shadow_line("admin", hashed))) == [
        "accounts.unchecked-hash"]


# --- sshd -------------------------------------------------------------------------------

HARDENED = """\
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding no
AllowTcpForwarding no
ClientAliveInterval 5m
"""


def ssh_checks(text: str, includes: dict[str, str] | None = None) -> list[str]:
    return sorted(checks(sshd.check(parse(text, includes))))


def test_a_hardened_sshd_config_passes() -> None:
    assert ssh_checks(HARDENED) == []


def test_unset_keywords_are_judged_by_openssh_s_defaults() -> None:
    """Only where the default is unsafe: password logins, TCP forwarding, no idle
    timeout (root may log in only with a key by default: not flagged)."""
    assert ssh_checks("") == ["ssh.idle-timeout", "ssh.password-auth", "ssh.tcp-forwarding"]
    assert "ssh.kbd-interactive" in ssh_checks("UsePAM yes\n")


def test_insecure_settings_are_flagged() -> None:
    text = HARDENED.replace("PermitRootLogin no", "permitrootlogin YES") + (
        "PermitEmptyPasswords yes\nX11Forwarding yes\nMaxAuthTries 10\n"
        "Ciphers +3des-cbc\nMACs hmac-sha2-256,hmac-md5\nKexAlgorithms "
        "diffie-hellman-group1-sha1\nGatewayPorts yes\nPermitTunnel yes\nProtocol 2,1\n"
        "LoginGraceTime 0\nIgnoreRhosts no\nHostKeyAlgorithms ssh-rsa\n")
    found = {f.check: f for f in sshd.check(parse(text))}
    assert set(found) == {"ssh.root-login", "ssh.permit-empty", "ssh.max-auth-tries",
                          "ssh.ciphers", "ssh.macs", "ssh.kex", "ssh.gateway-ports",
                          "ssh.tunnel", "ssh.protocol", "ssh.login-grace",
                          "ssh.ignore-rhosts", "ssh.signature-algorithms"}
    assert found["ssh.root-login"].severity == "high"
    assert "line 1" in found["ssh.root-login"].detail
    assert ssh_checks(HARDENED + "Ciphers -3des-cbc\nCiphers aes256-gcm@openssh.com\n") == []


def test_the_first_value_wins() -> None:
    assert ssh_checks(HARDENED + "PasswordAuthentication yes\n") == []
    assert ssh_checks("PasswordAuthentication=yes\n" + HARDENED) == ["ssh.password-auth"]


def test_include_of_sshd_config_d_is_read_in_place_and_in_lexical_order() -> None:
    main = "Include /etc/ssh/sshd_config.d/*.conf\n" + HARDENED.replace(
        "PasswordAuthentication no\n", "")
    drop_ins = {"/etc/ssh/sshd_config.d/20-late.conf": "PasswordAuthentication no\n",
                "/etc/ssh/sshd_config.d/10-early.conf": "PasswordAuthentication yes\n",
                "/etc/ssh/sshd_config.d/30-notes.txt": "PermitRootLogin yes\n"}
    found = sshd.check(parse(main, drop_ins))
    assert checks(found) == ["ssh.password-auth"]
    assert "10-early.conf line 1" in found[0].detail
    relative = "Include sshd_config.d/20-late.conf\n" + main
    assert ssh_checks(relative, drop_ins) == []


def test_match_blocks_are_judged_apart_and_end_with_their_file() -> None:
    text = HARDENED + "Match Address 10.0.0.0/8\n    PermitRootLogin yes\n"
    found = sshd.check(parse(text))
    assert checks(found) == ["ssh.root-login"]
    assert "under Match Address 10.0.0.0/8" in found[0].detail
    # a Match opened in a drop-in does not swallow the main file's settings after it
    drop_in = {"/etc/ssh/sshd_config.d/a.conf": "Match User backup\nX11Forwarding yes\n"}
    main = "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n" + HARDENED
    assert ssh_checks(main, drop_in) == ["ssh.password-auth", "ssh.x11"]
    # an Include inside a Match block is conditional
    inside = HARDENED + "Match Group ops\nInclude /etc/ssh/sshd_config.d/*.conf\n"
    found = sshd.check(parse(inside, {"/etc/ssh/sshd_config.d/b.conf":
                                      "PasswordAuthentication yes\n"}))
    assert checks(found) == ["ssh.password-auth"] and "under Match Group ops" in \
        found[0].detail


def test_sshd_time_values() -> None:
    assert (sshd.seconds("90"), sshd.seconds("5m"), sshd.seconds("1h30m")) == (90, 300, 5400)
    assert sshd.seconds("soon") is None
    setting = parse("ClientAliveInterval 300 # five minutes\n").first("clientaliveinterval")
    assert setting is not None and setting.value == "300"


# --- listening services -----------------------------------------------------------------


def test_allowed_service_specifications() -> None:
    assert parse_allowed("22") == Allowed(22)
    assert parse_allowed("tcp/22") == Allowed(22, proto="tcp")
    assert parse_allowed("sshd") == Allowed(process="sshd")
    assert parse_allowed("udp/chronyd:123") == Allowed(123, "chronyd", "udp")
    for bad in ("sctp/22", "sshd:99999", "tcp/", ""):
        with pytest.raises(InputError):
            parse_allowed(bad)


ANY = "0.0.0.0"  # noqa: S104 (a listener's address, nothing binds here)


def test_unexpected_listeners_are_flagged_loopback_lower() -> None:
    listeners = [Listener("tcp", ANY, 4444, "nc", 77),
                 Listener("tcp", "::1", 6379, "redis-server", 78),
                 Listener("tcp", "127.0.0.1", 8080, "", None),
                 Listener("udp", ANY, 123, "chronyd", 79)]
    found = services.check(listeners, [parse_allowed("udp/chronyd:123"),
                                       parse_allowed("8080")])
    assert [(f.check, f.severity) for f in found] == [
        ("services.unexpected", "high"), ("services.unexpected-local", "low")]
    assert found[0].detail == "tcp 0.0.0.0:4444 by nc (pid 77)"
    assert found[1].detail == "tcp [::1]:6379 by redis-server (pid 78)"
    assert services.check(listeners, [Allowed()]) == []  # an allowance of everything


# --- file modes -------------------------------------------------------------------------


def rec(path: str, kind: int, mode: int, uid: int = 0) -> FileRecord:
    return FileRecord(path, kind | mode, uid)


def test_world_writable_and_set_id_files_are_flagged() -> None:
    records = [rec("/usr/bin/tool", stat.S_IFREG, 0o757),
               rec("/usr/lib/drop", stat.S_IFDIR, 0o777),
               rec("/usr/bin/su", stat.S_IFREG, 0o4755),
               rec("/usr/bin/game", stat.S_IFREG, 0o4755, uid=5),
               rec("/usr/bin/wall", stat.S_IFREG, 0o2755)]
    found = permissions.check(records)
    assert [(f.check, f.severity) for f in sorted(found, key=Finding.sort_key)] == [
        ("files.world-writable", "high"), ("files.world-writable", "high"),
        ("files.setuid", "medium"), ("files.setgid", "low"), ("files.setuid", "low")]


def test_sticky_directories_links_and_devices_pass() -> None:
    records = [rec("/etc/tmp", stat.S_IFDIR, 0o1777), rec("/bin", stat.S_IFLNK, 0o777),
               rec("/etc/null", stat.S_IFCHR, 0o666), rec("/usr/bin/ls", stat.S_IFREG, 0o755)]
    assert permissions.check(records) == []
    assert checks(permissions.check([], truncated=True)) == ["files.incomplete"]


def test_the_walk_lstats_system_paths_without_following_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/suid").write_text("x")
    (root / "usr/bin/suid").chmod(0o4755)
    (root / "bin").symlink_to("usr/bin")  # merged /usr: walked once, as usr/bin
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "open").write_text("x")
    (outside / "open").chmod(0o777)
    (root / "usr/bin/escape").symlink_to(outside / "open")
    (root / "usr/lib").symlink_to(outside)  # never walked into
    (root / "home").mkdir()
    (root / "home/writable").write_text("x")
    (root / "home/writable").chmod(0o666)  # not a system path
    records, truncated = collect.walk(root)
    assert not truncated
    paths = {r.path: r for r in records}
    assert set(paths) == {"/usr/bin", "/usr/bin/suid", "/usr/bin/escape"}
    assert stat.S_ISLNK(paths["/usr/bin/escape"].mode)
    assert checks(permissions.check(records)) == ["files.setuid"]
    few, truncated = collect.walk(root, cap=2)
    assert truncated and len(few) == 2


def test_paths_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/sshd_config").write_text("PermitRootLogin yes\n")
    (root / "etc/ssh/sshd_config").symlink_to("/usr/share/sshd_config")  # absolute: in root
    (root / "etc/up").symlink_to("../../../../../../etc")
    assert collect.read_text(root, "/etc/ssh/sshd_config") == "PermitRootLogin yes\n"
    assert collect.resolve(root, "/etc/up/ssh") == root / "etc/ssh"
    (root / "loop").symlink_to("/loop")
    assert collect.resolve(root, "/loop/x") is None
    assert collect.read_text(root, "/etc/missing") is None


def test_the_collector_follows_includes_and_finds_units(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (root / "etc/ssh/sshd_config").write_text("Include sshd_config.d/*.conf\n" + HARDENED)
    (root / "etc/ssh/sshd_config.d/50-cloud.conf").write_text(
        "Include /etc/ssh/extra\nPasswordAuthentication yes\n")
    (root / "etc/ssh/extra").write_text("X11Forwarding yes\n")
    (root / "etc/ssh/sshd_config.d/README").write_text("PermitRootLogin yes\n")
    wants = root / "etc/systemd/system/getty.target.wants"
    wants.mkdir(parents=True)
    (wants / "serial-getty@ttyS0.service").symlink_to(
        "/lib/systemd/system/serial-getty@.service")
    (wants / "getty@tty1.service").symlink_to("/lib/systemd/system/getty@.service")
    (root / "etc/systemd/system/getty@tty1.service").symlink_to("/dev/null")
    inputs = collect.from_root(root, CMDLINE, None)
    assert set(inputs.sshd_includes) == {"/etc/ssh/sshd_config.d/50-cloud.conf",
                                         "/etc/ssh/extra"}
    assert inputs.masked_units == ("getty@tty1.service",)
    assert checks(audit(inputs)) == ["console.getty", "ssh.password-auth", "ssh.x11"]


# --- fuses and the whole audit --------------------------------------------------------------


def fuse_state(debug_disable: bool) -> FuseState:
    return FuseState(bytes(48), True, 1, debug_disable, frozenset({"root_key_hash"}), 1)


def test_an_unburnt_debug_fuse_is_high() -> None:
    assert [(f.check, f.severity) for f in fuses(fuse_state(False))] == [("fuse.debug", "high")]
    assert fuses(fuse_state(True)) == []


def test_audit_orders_by_severity_then_check_and_summarises() -> None:
    inputs = Inputs(cmdline=f"console=ttyS0 {CMDLINE}", inittab=None,
                    shadow=shadow_line("root", ""), sshd_config="X11Forwarding yes\n"
                    + HARDENED, listeners=(Listener("tcp", "127.0.0.1", 9, "x", 1),),
                    files=(rec("/etc/x", stat.S_IFREG, 0o4755),), fuses=fuse_state(False))
    found = audit(inputs)
    assert checks(found) == ["accounts.empty-password", "console.cmdline", "fuse.debug",
                             "files.setuid", "services.unexpected-local", "ssh.x11"]
    assert summary(found) == {"high": 3, "medium": 1, "low": 2}
    assert audit(Inputs()) == []
