"""From audit records to denials: what an app tried and what stopped it. Pure: text in,
:class:`Denial` out.

The kernel writes one *event* as several records sharing a serial number
(``audit(1700000000.123:42)``): a SYSCALL record (who, which call, its result),
PATH, CWD and SOCKADDR records (what it was aimed at), a Landlock or seccomp record
(which rule refused it), and an end-of-event record. :class:`Assembler` gathers
them; :func:`interpret` says what the app tried, in a line a person can read.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field

import pyseccomp

SYSCALL, PATH, SOCKADDR, CWD, EOE, SECCOMP = 1300, 1302, 1306, 1307, 1320, 1326
LANDLOCK_ACCESS, LANDLOCK_DOMAIN = 1423, 1424
WANTED = {SYSCALL, PATH, SOCKADDR, CWD, EOE, SECCOMP, LANDLOCK_ACCESS, LANDLOCK_DOMAIN}
KEY = "edgeward"  # the prefix of the agent's audit rule keys
COMPLAIN_KEY = "edgeward-complain"
SECCOMP_ERRNO, SECCOMP_LOG, SECCOMP_ALLOW = 0x00050000, 0x7FFC0000, 0x7FFF0000
SECCOMP_KILL_PROCESS, SECCOMP_KILL_THREAD = 0x80000000, 0x00000000
ERRNO = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 13: "EACCES", 30: "EROFS", 101: "ENETUNREACH"}
_HEADER = re.compile(r"^audit\((\d+)\.(\d+):(\d+)\):\s?(.*)$", re.S)
_FIELD = re.compile(r'([a-z_0-9-]+)=("[^"]*"|\S*)')
_ENCODED = {"name", "path", "comm", "exe", "cwd", "ocomm", "key"}
_HEX = re.compile(r"^(?:[0-9A-F]{2})+$")
# probes that fail all the time in healthy programs: not a denial worth a report
_QUIET_CALLS = {"access", "faccessat", "faccessat2"}
# refused by the filter as unknown so that the C library falls back to clone(), whose
# flags the filter can read: every thread start tries it first
_QUIET_SECCOMP = {"clone3"}
_QUIET_SOCKETS = {"/var/run/nscd/socket", "/run/nscd/socket"}
_LANDLOCK_VERBS = {"fs.read_file": "read", "fs.write_file": "write", "fs.execute": "execute",
                   "fs.read_dir": "list", "fs.truncate": "truncate", "fs.ioctl_dev": "ioctl",
                   "fs.refer": "link or rename", "net.bind_tcp": "bind",
                   "net.connect_tcp": "connect", "scope.signal": "signal",
                   "scope.abstract_unix_socket": "connect"}
_CREATE = {"mkdir", "mkdirat", "mknod", "mknodat", "symlink", "symlinkat", "link", "linkat"}
_DELETE = {"unlink", "unlinkat", "rmdir"}
_CHANGE = {"chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
           "setxattr", "lsetxattr", "removexattr", "lremovexattr", "utimensat", "utime",
           "utimes"}
_NETWORK = {"connect", "sendto", "sendmsg", "sendmmsg", "bind"}
_SIGNALS = {"kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "rt_sigqueueinfo"}


@dataclass(frozen=True)
class Denial:
    uid: int
    kind: str  # syscall | file | network | signal
    access: str  # read, write, execute, create, delete, connect, bind, signal, call, ...
    target: str  # a path, a system call's name, host:port, a pid
    mechanism: str  # seccomp | landlock | permissions | read-only | egress | no-network
    pid: int = 0
    comm: str = ""
    exe: str = ""
    time: float = 0.0
    allowed: bool = False  # complain mode: it would have been denied, and was let through

    @property
    def what(self) -> str:
        """One line for a person: what was tried, and what stopped it."""
        verb = "would be denied" if self.allowed else "denied"
        if self.kind == "syscall":
            return f"system call {self.target} {verb} ({self.mechanism})"
        return f"{self.access} {self.target} {verb} ({self.mechanism})"

    def to_dict(self) -> dict[str, object]:
        return {"uid": self.uid, "kind": self.kind, "access": self.access,
                "target": self.target, "mechanism": self.mechanism, "pid": self.pid,
                "comm": self.comm, "exe": self.exe, "time": self.time,
                "allowed": self.allowed, "what": self.what}


@dataclass
class Event:
    serial: int
    time: float
    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def first(self, kind: int) -> dict[str, str] | None:
        return next((r for t, r in self.records if t == kind), None)

    def all(self, kind: int) -> list[dict[str, str]]:
        return [r for t, r in self.records if t == kind]


def fields(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _FIELD.findall(body):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        elif key in _ENCODED and _HEX.match(value):
            value = bytes.fromhex(value).decode("utf-8", errors="replace")
        out.setdefault(key, value)
    return out


class Assembler:
    """Gathers records into events: one is complete at its end-of-event record, or when
    ``linger`` seconds (of record time) have passed without one."""

    def __init__(self, linger: float = 0.25) -> None:
        self.pending: dict[int, Event] = {}
        self.linger = linger
        self.domains: dict[str, int] = {}  # Landlock domain -> uid of its creator

    def feed(self, kind: int, text: str, now: float) -> list[Event]:
        done = []
        if kind in WANTED:
            match = _HEADER.match(text)
            if match:
                stamp = float(f"{match.group(1)}.{match.group(2)}")
                serial = int(match.group(3))
                record = fields(match.group(4))
                if kind == LANDLOCK_DOMAIN and record.get("status") == "allocated":
                    self.domains[record.get("domain", "")] = _int(record.get("uid"), -1)
                event = self.pending.setdefault(serial, Event(serial, stamp))
                if kind == EOE:
                    done.append(self.pending.pop(serial))
                else:
                    event.records.append((kind, record))
        for serial in [s for s, e in self.pending.items() if now - e.time >= self.linger]:
            done.append(self.pending.pop(serial))
        return done

    def flush(self) -> list[Event]:
        done = list(self.pending.values())
        self.pending.clear()
        return done


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value or "", 0) if (value or "").startswith("0x") else int(value or "")
    except ValueError:
        return default


def syscall_name(number: int) -> str:
    try:
        return bytes(pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, number)).decode()
    except (ValueError, TypeError, OSError):
        return f"syscall {number}"


def sockaddr(hexa: str) -> str:
    """A SOCKADDR record's address as host:port, or a unix socket's path."""
    try:
        raw = bytes.fromhex(hexa)
    except ValueError:
        return "?"
    if len(raw) < 2:
        return "?"
    family = struct.unpack_from("=H", raw)[0]
    if family == 2 and len(raw) >= 8:
        return f"{ipaddress.IPv4Address(raw[4:8])}:{struct.unpack_from('>H', raw, 2)[0]}"
    if family == 10 and len(raw) >= 24:
        return f"[{ipaddress.IPv6Address(raw[8:24])}]:{struct.unpack_from('>H', raw, 2)[0]}"
    if family == 1:
        path = raw[2:]
        if path[:1] == b"\0":
            return "@" + path[1:].split(b"\0")[0].decode(errors="replace")
        return path.split(b"\0")[0].decode(errors="replace")
    return f"family {family}"


def _path(event: Event) -> str:
    cwd = (event.first(CWD) or {}).get("cwd", "")
    names = [r for r in event.all(PATH) if r.get("name") not in (None, "", "(null)")]
    if not names:
        return ""
    chosen = next((r for r in reversed(names) if r.get("nametype") != "PARENT"), names[-1])
    name = chosen["name"]
    if not name.startswith("/") and cwd:
        name = f"{cwd.rstrip('/')}/{name}"
    return name


def _open_access(call: str, record: dict[str, str]) -> str:
    if call in ("open", "creat"):
        flags = _int("0x" + record.get("a1", "0"))
    elif call == "openat":
        flags = _int("0x" + record.get("a2", "0"))
    else:
        return "open"
    if call == "creat" or flags & 0x40:
        return "create"
    return {0: "read", 1: "write", 2: "read-write"}.get(flags & 3, "open")


def _file_access(call: str, record: dict[str, str]) -> str:
    if call in ("open", "openat", "openat2", "creat"):
        return _open_access(call, record)
    if call in ("execve", "execveat"):
        return "execute"
    if call in _CREATE:
        return "create"
    if call in _DELETE:
        return "delete"
    if call.startswith("rename"):
        return "rename"
    if call in _CHANGE:
        return "change"
    if call in ("truncate", "ftruncate"):
        return "truncate"
    return call


def interpret(event: Event, domains: dict[str, int] | None = None) -> Denial | None:
    """The denial an event records, or None when it is not one (or is noise)."""
    call_record = event.first(SYSCALL)
    seccomp = event.first(SECCOMP)
    landlock = event.first(LANDLOCK_ACCESS)
    source = call_record or seccomp
    uid = _int((source or {}).get("uid"), -1)
    if uid < 0 and landlock is not None and domains:
        uid = domains.get(landlock.get("domain", ""), -1)
    if uid < 0:
        return None
    info = source or {}

    def made(kind: str, access: str, target: str, mechanism: str, allowed: bool = False
             ) -> Denial:
        return Denial(uid, kind, access, target, mechanism, _int(info.get("pid")),
                      info.get("comm", ""), info.get("exe", ""), event.time, allowed)

    if seccomp is not None:
        code = _int(seccomp.get("code"), 0) & 0xFFFF0000
        name = syscall_name(_int(seccomp.get("syscall")))
        if code == SECCOMP_ALLOW or name in _QUIET_SECCOMP:
            return None
        killed = code in (SECCOMP_KILL_PROCESS, SECCOMP_KILL_THREAD)
        return made(kind="syscall", access="call", target=name,
                    mechanism="seccomp, killed" if killed else "seccomp",
                    allowed=code == SECCOMP_LOG)
    call = syscall_name(_int((call_record or {}).get("syscall"), -1)) if call_record else ""
    if landlock is not None:
        blocker = landlock.get("blockers", "").split(",")[0]
        verb = _LANDLOCK_VERBS.get(blocker, "create" if "make_" in blocker else
                                   "delete" if "remove_" in blocker else blocker)
        if blocker.startswith("net."):
            target = f"{landlock.get('saddr', landlock.get('daddr', '*'))}:" \
                     f"{landlock.get('src', landlock.get('dest', '?'))}"
            return made(kind="network", access=verb, target=target, mechanism="landlock")
        if blocker.startswith("scope."):
            target = f"pid {landlock.get('opid', '?')} ({landlock.get('ocomm', '?')})" \
                if blocker == "scope.signal" else landlock.get("path", "an abstract socket")
            kind = "signal" if blocker == "scope.signal" else "network"
            return made(kind=kind, access=verb, target=target, mechanism="landlock")
        return made(kind="file", access=verb, target=landlock.get("path", _path(event)),
                    mechanism="landlock")
    key = call_record.get("key", "") if call_record is not None else ""
    if call_record is None or not key.startswith(KEY):
        return None
    address = sockaddr((event.first(SOCKADDR) or {}).get("saddr", ""))
    if address.startswith(("/", "@")):
        address = f"unix socket {address}"
    if key == COMPLAIN_KEY:  # complain mode: what it did, allowed or not
        if call in _NETWORK:
            return made(kind="network", access="bind" if call == "bind" else "connect",
                        target=address, mechanism="complain", allowed=True)
        path = _path(event)
        if not path:
            return None
        return made(kind="file", access=_file_access(call, call_record), target=path,
                    mechanism="complain", allowed=True)
    if call_record.get("success") != "no" or call in _QUIET_CALLS:
        return None
    errno = -_int(call_record.get("exit"), 0)
    if call in _NETWORK:
        if address.startswith("unix socket "):
            if address.removeprefix("unix socket ") in _QUIET_SOCKETS:
                return None
            return made(kind="network", access="connect", target=address,
                        mechanism="permissions" if errno != 2 else "not in its view")
        verb = "bind" if call == "bind" else "connect"
        mechanism = {1: "not network-bind" if verb == "bind" else "egress",
                     101: "no-network"}.get(errno, ERRNO.get(errno, str(errno)))
        return made(kind="network", access=verb, target=address, mechanism=mechanism)
    if call in _SIGNALS:
        return made(kind="signal", access="signal",
                    target=f"pid {_int('0x' + call_record.get('a0', '0'))}",
                    mechanism="namespace" if errno == 3 else "permissions")
    path = _path(event)
    mechanism = {13: "permissions", 30: "read-only", 1: "not permitted"}.get(
        errno, ERRNO.get(errno, str(errno)))
    if path:
        return made(kind="file", access=_file_access(call, call_record), target=path,
                    mechanism=mechanism)
    return made(kind="syscall", access="call", target=call, mechanism=mechanism)
