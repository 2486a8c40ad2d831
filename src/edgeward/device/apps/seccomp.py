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
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        flt.add_rule(pyseccomp.ALLOW, "socket",
                     pyseccomp.Arg(1, pyseccomp.MASKED_EQ, SOCKET_TYPE_MASK, int(kind)))
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
