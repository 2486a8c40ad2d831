"""An app's seccomp filter (libseccomp via pyseccomp), compiled to BPF.

Default deny: a call not on :data:`syscalls.ALLOWED` fails with EPERM. ``socket``
is allowed only for stream, datagram and seqpacket sockets (no raw sockets). In
complain mode the default is to log and allow instead. ``edgeward-confine``
loads the program with ``SECCOMP_FILTER_FLAG_LOG``, so each refusal is written to
the audit log the agent reads; no_new_privs is set first.

The BPF is compiled once per variant and kept (it only depends on the mode).
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import tempfile

import pyseccomp

from edgeward.device.apps.syscalls import ALLOWED

SOCKET_TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC live above it
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: no new namespaces
CLONE_NAMESPACES = 0x7E020000
IPPROTO_TCP, IPPROTO_UDP = 6, 17
NETLINK_ROUTE = 0
# (family, type, protocol) the app may open: TCP and UDP only (the egress filter sees
# them; ICMP, UDP-Lite, SCTP and raw sockets it would not), unix sockets, and route
# netlink (getaddrinfo asks it which addresses the host has). Anything else -- packet,
# vsock, Bluetooth, other netlink families -- is refused.
SOCKETS = [(socket.AF_UNIX, kind, 0) for kind in
           (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET)]
SOCKETS += [(family, socket.SOCK_STREAM, proto) for family in (socket.AF_INET, socket.AF_INET6)
            for proto in (0, IPPROTO_TCP)]
SOCKETS += [(family, socket.SOCK_DGRAM, proto) for family in (socket.AF_INET, socket.AF_INET6)
            for proto in (0, IPPROTO_UDP)]
SOCKETS += [(socket.AF_NETLINK, kind, NETLINK_ROUTE) for kind in (socket.SOCK_RAW,
                                                                   socket.SOCK_DGRAM)]


@functools.cache
def program(complain: bool = False) -> bytes:
    """The filter's BPF: deny (EPERM) what is not allowed, or log it in complain mode."""
    default = pyseccomp.LOG if complain else pyseccomp.ERRNO(errno.EPERM)
    flt = pyseccomp.SyscallFilter(default)
    for name in ALLOWED:
        try:
            flt.add_rule(pyseccomp.ALLOW, name)
        except (ValueError, RuntimeError, OSError):
            continue  # a call this architecture does not have
    for family, kind, proto in SOCKETS:
        flt.add_rule(pyseccomp.ALLOW, "socket", pyseccomp.Arg(0, pyseccomp.EQ, int(family)),
                     pyseccomp.Arg(1, pyseccomp.MASKED_EQ, SOCKET_TYPE_MASK, int(kind)),
                     pyseccomp.Arg(2, pyseccomp.EQ, proto))
    # threads and processes, but no new namespaces (user namespaces are how most kernel
    # exploits reach their privileged code); clone3 passes its flags in memory the
    # filter cannot read, so it is refused as unknown and the C library falls back
    flt.add_rule(pyseccomp.ALLOW, "clone",
                 pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_NAMESPACES, 0))
    flt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def pipe(complain: bool = False) -> int:
    """A pipe's read end holding the filter, for ``edgeward-confine restrict -s FD``."""
    code = program(complain)
    read, write = os.pipe()
    try:
        if len(code) > 65536:
            raise OSError(errno.E2BIG, "seccomp filter larger than a pipe")
        os.write(write, code)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read
