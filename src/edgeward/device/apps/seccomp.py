"""An app's seccomp filter (libseccomp via pyseccomp), compiled to BPF for bubblewrap.

Default deny: a call not on :data:`syscalls.ALLOWED` fails with EPERM. ``socket``
is allowed only for stream, datagram and seqpacket types (no raw sockets). The
filter is exported as BPF and handed to ``bwrap --seccomp FD``, so it is in force
from the app's first instruction, with no_new_privs set.
"""

from __future__ import annotations

import errno
import socket
import tempfile
from typing import IO

import pyseccomp

from edgeward.device.apps.syscalls import ALLOWED

SOCKET_TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC live above it


def compile_filter() -> IO[bytes]:
    """The filter as BPF in an unlinked temporary file, positioned at its start."""
    flt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
    for name in ALLOWED:
        try:
            flt.add_rule(pyseccomp.ALLOW, name)
        except (ValueError, RuntimeError, OSError):
            continue  # a call this architecture does not have
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        flt.add_rule(pyseccomp.ALLOW, "socket",
                     pyseccomp.Arg(1, pyseccomp.MASKED_EQ, SOCKET_TYPE_MASK, int(kind)))
    out = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    flt.export_bpf(out)
    out.seek(0)
    return out
