"""The kernel's audit subsystem over netlink: where the agent hears of app denials.

Landlock (which logs its denials when audit is on), seccomp (filters loaded with
``SECCOMP_FILTER_FLAG_LOG``) and the agent's own syscall rules (a system call by an
app's user that failed with EACCES, EPERM, EROFS, ... : denied by file permissions,
a read-only mount, the egress filter) all write audit records. The agent reads them
from the read-only multicast group (``AUDIT_NLGRP_READLOG``), so it coexists with
auditd or another agent, and needs no audit daemon to be running.

:class:`Audit` sets audit up (enabled, a backlog large enough for bursts) and adds
or removes rules; :class:`Reader` yields ``(type, text)`` for each record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pyseccomp

from edgeward.errors import NotAvailable

NETLINK_AUDIT = 9
NLGRP_READLOG = 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_REQUEST, F_ACK = 0x1, 0x4
GET, SET, ADD_RULE, DEL_RULE, LIST_RULES = 1000, 1001, 1011, 1012, 1013
STATUS_ENABLED, STATUS_RATE_LIMIT, STATUS_BACKLOG_LIMIT = 0x1, 0x8, 0x10
FILTER_TASK, FILTER_EXIT, NEVER, ALWAYS = 0x01, 0x04, 0, 2
FIELD_UID, FIELD_ARCH, FIELD_EXIT, FIELD_KEY = 1, 11, 103, 210
OP_EQUAL, OP_GE, OP_LE = 0x40000000, 0x60000000, 0x50000000
BITMASK_WORDS, MAX_FIELDS = 64, 64
ARCHES = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7, "armv7l": 0x40000028,
          "riscv64": 0xC00000F3}
_HEADER = struct.Struct("=IHHII")
_STATUS = struct.Struct("=10I")


@dataclass(frozen=True)
class Rule:
    """``-a always,exit [-S calls] [-F exit=-E] -F uid>=low -F uid<=high -k key``, or with
    ``task``: ``-a never,task -F uid>=low -F uid<=high`` (processes started by those
    users are not audited at all)."""

    key: str
    uids: tuple[int, int]
    syscalls: tuple[str, ...] = ()  # none: every call
    exit: int = 0  # an errno the call failed with (0: any outcome)
    task: bool = False  # a never,task rule

    def encode(self) -> bytes:
        machine = os.uname().machine
        arch = ARCHES.get(machine)
        if arch is None:
            raise NotAvailable(f"audit rules: unknown architecture {machine}")
        mask = [0] * BITMASK_WORDS
        if not self.syscalls:
            mask = [0xFFFFFFFF] * BITMASK_WORDS
        for name in self.syscalls:
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            mask[number // 32] |= 1 << (number % 32)
        fields = [] if self.task else [(FIELD_ARCH, OP_EQUAL, arch)]
        fields += [(FIELD_UID, OP_GE, self.uids[0]), (FIELD_UID, OP_LE, self.uids[1])]
        if self.exit:
            fields.append((FIELD_EXIT, OP_EQUAL, (-self.exit) & 0xFFFFFFFF))
        key = self.key.encode()
        fields.append((FIELD_KEY, OP_EQUAL, len(key)))
        pad = [0] * (MAX_FIELDS - len(fields))
        return struct.pack(f"=3I{BITMASK_WORDS}I{MAX_FIELDS}I{MAX_FIELDS}I{MAX_FIELDS}II",
                           FILTER_TASK if self.task else FILTER_EXIT,
                           NEVER if self.task else ALWAYS, len(fields), *mask,
                           *[f[0] for f in fields], *pad,
                           *[f[2] for f in fields], *pad,
                           *[f[1] for f in fields], *pad, len(key)) + key


def _message(kind: int, payload: bytes, seq: int) -> bytes:
    return _HEADER.pack(_HEADER.size + len(payload), kind, F_REQUEST | F_ACK, seq, 0) + payload


def _socket() -> socket.socket:
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as e:
        raise NotAvailable(f"the kernel's audit netlink socket cannot be opened: "
                           f"{e.strerror}") from e


class Audit:
    """Audit control: status, enabling, rules (root)."""

    def __init__(self) -> None:
        self.sock = _socket()
        self.sock.bind((0, 0))
        self.sock.settimeout(5.0)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Audit:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, kind: int, payload: bytes = b"") -> list[tuple[int, bytes]]:
        """Send one request; the replies up to its acknowledgement (or done)."""
        self.seq += 1
        self.sock.send(_message(kind, payload, self.seq))
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, typ, _, seq, _ = _HEADER.unpack_from(data, offset)
                body = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if typ == NLMSG_ERROR:
                    code = struct.unpack_from("=i", body)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    if kind != GET and kind != LIST_RULES:
                        return replies
                    continue
                if typ == NLMSG_DONE:
                    return replies
                replies.append((typ, body))
                if kind == GET:
                    return replies

    def status(self) -> dict[str, int]:
        replies = self._request(GET)
        body = next(b for t, b in replies if t == GET).ljust(_STATUS.size, b"\0")
        names = ("mask", "enabled", "failure", "pid", "rate_limit", "backlog_limit",
                 "lost", "backlog", "version", "backlog_wait_time")
        return dict(zip(names, _STATUS.unpack_from(body), strict=True))

    def enable(self, backlog: int = 8192, rate: int = 2000) -> int:
        """Audit on, with room for bursts (the kernel default of 64 records is not) and a
        ceiling on records per second (a flooding app costs the agent bounded work; the
        kernel counts what it drops). The previous ``enabled`` value, to restore."""
        status = self.status()
        if status["enabled"] == 2:
            return 2  # locked by the system's configuration: as it is
        mask = STATUS_ENABLED | (STATUS_BACKLOG_LIMIT if status["backlog_limit"] < backlog
                                 else 0) | (STATUS_RATE_LIMIT if not status["rate_limit"]
                                            else 0)
        try:
            self._request(SET, _STATUS.pack(mask, 1, 0, 0, rate, backlog, 0, 0, 0, 0)
                          + bytes(8))
        except OSError as e:
            raise NotAvailable(f"cannot enable kernel audit: {e.strerror}") from e
        return int(status["enabled"])

    def set_enabled(self, enabled: int) -> None:
        with contextlib.suppress(OSError):
            self._request(SET, _STATUS.pack(STATUS_ENABLED, enabled, 0, 0, 0, 0, 0, 0, 0, 0)
                          + bytes(8))

    def add(self, rule: Rule) -> None:
        try:
            self._request(ADD_RULE, rule.encode())
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise NotAvailable(f"cannot add audit rule {rule.key}: {e.strerror}") from e

    def remove(self, rule: Rule) -> None:
        with contextlib.suppress(OSError):  # not there: nothing to remove
            self._request(DEL_RULE, rule.encode())


class Reader:
    """Audit records as the kernel multicasts them: ``(type, text)``."""

    def __init__(self, buffer: int = 8 << 20) -> None:
        self.sock = _socket()
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, buffer)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
        try:
            self.sock.bind((0, 1 << (NLGRP_READLOG - 1)))
        except OSError as e:
            self.sock.close()
            raise NotAvailable(f"cannot read audit records: {e.strerror}") from e
        self.lost = 0

    def close(self) -> None:
        self.sock.close()

    def records(self, timeout: float) -> Iterator[tuple[int, str]]:
        """The records that arrive within ``timeout`` seconds (at least one wait)."""
        if not select.select([self.sock], [], [], timeout)[0]:
            return
        while True:
            try:
                data = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the socket overflowed: some were lost
                    self.lost += 1
                    continue
                raise
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, typ, _, _, _ = _HEADER.unpack_from(data, offset)
                body = data[offset + _HEADER.size:offset + max(length, _HEADER.size)]
                offset += max((length + 3) & ~3, _HEADER.size)
                yield typ, body.rstrip(b"\0").decode("utf-8", errors="replace")
