"""An app's egress allow-list, enforced in the kernel by a cgroup BPF program.

The program runs at every ``connect()`` (TCP, and UDP that connects) and every
unconnected UDP ``sendmsg()`` of a process in the app's cgroup (v2), IPv4 and
IPv6. A destination that matches no allowed network and port is refused there
and then: the call fails with EPERM, which the audit rule for app users turns
into a report naming the destination (see :mod:`audit`). Loopback is not
special: an app reaches 127.0.0.1 only if its allow-list says so, so it cannot
talk to the agent or its neighbours' ports behind their backs.

:func:`program` is pure (entries in, BPF instructions out); :func:`attach` loads
it with the ``bpf()`` system call and attaches it to the app's cgroup.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeward.errors import NotAvailable
from edgeward.trust.appmanifest import Egress

# enum bpf_prog_type / bpf_attach_type / bpf_cmd (include/uapi/linux/bpf.h)
PROG_TYPE_CGROUP_SOCK_ADDR = 18
INET4_BIND, INET6_BIND = 8, 9
INET4_CONNECT, INET6_CONNECT, UDP4_SENDMSG, UDP6_SENDMSG = 10, 11, 14, 15
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "armv6l": 386, "riscv64": 280}
# struct bpf_sock_addr: user_family, user_ip4, user_ip6[4], user_port
OFF_IP4, OFF_IP6, OFF_PORT = 4, 8, 24
MAX_ENTRIES = 256


@dataclass(frozen=True)
class Allowed:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    port: int  # 0: any port


def nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for line in resolv_conf.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                found.append(words[1].split("%")[0])
    return found


def resolve(entries: Iterable[Egress], lookup: Callable[[str], list[str]] | None = None,
            servers: list[str] | None = None) -> list[Allowed]:
    """The manifest's entries as networks: host names looked up now (each address it
    has), and the name servers' port 53 when a name is on the list, so the app can
    resolve it too. A name that does not resolve allows nothing (and is said so)."""
    lookup = lookup or _addresses
    out: list[Allowed] = []
    named = False
    for entry in entries:
        try:
            out.append(Allowed(ipaddress.ip_network(entry.host), entry.port))
            continue
        except ValueError:
            named = True
        for address in lookup(entry.host):
            out.append(Allowed(ipaddress.ip_network(address), entry.port))
    if named:
        for server in servers if servers is not None else nameservers():
            with contextlib.suppress(ValueError):
                out.append(Allowed(ipaddress.ip_network(server), 53))
    return out


def _addresses(host: str) -> list[str]:
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, _s32(imm))


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _be32(raw: bytes) -> int:
    """Four bytes in network order as the program reads them (a native u32 load)."""
    return int(struct.unpack("=I", raw)[0])


def _port(port: int) -> int:
    return _be32(struct.pack(">H", port) + b"\0\0")


LDX_W = 0x61  # r_dst = *(u32 *)(r_src + off)
MOV64_REG, MOV64_IMM, AND32_IMM = 0xBF, 0xB7, 0x54
JNE32_IMM, EXIT = 0x56, 0x95


def _words(network: ipaddress.IPv4Network | ipaddress.IPv6Network, v6: bool
           ) -> list[tuple[int, int]]:
    """(value, mask) per 32-bit word of the address as the hook sees it."""
    if isinstance(network, ipaddress.IPv4Network):
        if not v6:
            return [(_be32(network.network_address.packed), _be32(network.netmask.packed))]
        mapped = ipaddress.IPv6Network(f"::ffff:{network.network_address}/"
                                       f"{96 + network.prefixlen}")
        network = mapped
    address, mask = network.network_address.packed, network.netmask.packed
    return [(_be32(address[i:i + 4]), _be32(mask[i:i + 4])) for i in range(0, 16, 4)]


def program(allowed: Iterable[Allowed], v6: bool) -> bytes:
    """The BPF program for one address family: 1 (allow) when the destination matches
    an allowed entry, else 0 (the kernel refuses the call with EPERM)."""
    entries = [a for a in allowed if v6 or isinstance(a.network, ipaddress.IPv4Network)]
    if len(entries) > MAX_ENTRIES:
        raise NotAvailable(f"at most {MAX_ENTRIES} egress entries per app")
    code = [_insn(MOV64_REG, 6, 1)]  # r6 = ctx
    code.append(_insn(LDX_W, 3, 6, OFF_PORT))  # r3 = user_port
    for entry in entries:
        checks: list[tuple[int, int, int]] = []  # (offset, value, mask)
        for i, (value, mask) in enumerate(_words(entry.network, v6)):
            if mask:
                checks.append(((OFF_IP6 + 4 * i) if v6 else OFF_IP4, value & mask, mask))
        block: list[tuple[str, int, int, int]] = []
        for offset, value, mask in checks:
            block += [("load", offset, 0, 0), ("and", mask, 0, 0), ("jne", value, 0, 0)]
        if entry.port:
            block.append(("port", _port(entry.port), 0, 0))
        size = sum(1 for _ in block) + 2  # + mov r0, 1; exit
        for index, (kind, a, _, _) in enumerate(block):
            skip = size - index - 1  # to the first instruction after this block
            if kind == "load":
                code.append(_insn(LDX_W, 2, 6, a))
            elif kind == "and":
                code.append(_insn(AND32_IMM, 2, 0, 0, a))
            elif kind == "jne":
                code.append(_insn(JNE32_IMM, 2, 0, skip, a))
            else:
                code.append(_insn(JNE32_IMM, 3, 0, skip, a))
        code += [_insn(MOV64_IMM, 0, 0, 0, 1), _insn(EXIT)]
        if not block:
            return b"".join(code)  # everything matches: nothing after it would run
    code += [_insn(MOV64_IMM, 0, 0, 0, 0), _insn(EXIT)]
    return b"".join(code)


def _bpf(cmd: int, attr: bytes) -> int:
    number = SYS_BPF.get(os.uname().machine)
    if number is None:
        raise NotAvailable(f"egress filtering: unknown bpf() on {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, len(attr))
    result = int(libc.syscall(number, cmd, buf, len(attr)))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def _load(code: bytes, attach_type: int) -> int:
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(4096)
    attr = struct.pack("<IIQQIIQII16sII", PROG_TYPE_CGROUP_SOCK_ADDR, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                       ctypes.addressof(log), 0, 0, b"edgeward_egress", 0, attach_type)
    try:
        return _bpf(BPF_PROG_LOAD, attr.ljust(128, b"\0"))
    except OSError as e:
        reason = log.value.decode(errors="replace").strip().splitlines()[-1:] or [
            e.strerror or "refused"]
        raise NotAvailable(f"the kernel refused the egress filter: {reason[0]}") from e


def bind_program(any_port: bool) -> bytes:
    """1 for a bind to port 0 (an ephemeral port, as a client may ask), or to any port
    when the app may listen (``network-bind``); else 0: EPERM."""
    if any_port:
        return _insn(MOV64_IMM, 0, 0, 0, 1) + _insn(EXIT)
    return b"".join([_insn(LDX_W, 3, 1, OFF_PORT), _insn(JNE32_IMM, 3, 0, 2, 0),
                     _insn(MOV64_IMM, 0, 0, 0, 1), _insn(EXIT),
                     _insn(MOV64_IMM, 0, 0, 0, 0), _insn(EXIT)])


def _attach_one(fd: int, cgroup: Path, code: bytes, attach_type: int) -> None:
    prog = _load(code, attach_type)
    try:
        _bpf(BPF_PROG_ATTACH, struct.pack("<IIII", fd, prog, attach_type, 0).ljust(128, b"\0"))
    except OSError as e:
        raise NotAvailable(f"cannot attach a network filter to {cgroup}: {e.strerror}") from e
    finally:
        os.close(prog)


def attach_bind(cgroup: Path, any_port: bool) -> None:
    """The bind filter (TCP and UDP, IPv4 and IPv6): Landlock sees only TCP binds."""
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for attach_type in (INET4_BIND, INET6_BIND):
            _attach_one(fd, cgroup, bind_program(any_port), attach_type)
    finally:
        os.close(fd)


def attach(cgroup: Path, allowed: Iterable[Allowed]) -> None:
    """Load the program for IPv4 and IPv6 connect and sendmsg and attach it to the app's
    cgroup (v2), replacing what an earlier start attached."""
    entries = list(allowed)
    fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for attach_type, v6 in ((INET4_CONNECT, False), (UDP4_SENDMSG, False),
                                (INET6_CONNECT, True), (UDP6_SENDMSG, True)):
            _attach_one(fd, cgroup, program(entries, v6), attach_type)
    finally:
        os.close(fd)
