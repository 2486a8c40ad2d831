"""Listening services: every socket that waits for connections, against what the gateway
is expected to run.

A listener on loopback answers only the gateway itself (low); one on a network
address answers whoever reaches it, which is where a backdoor listens (high).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from edgeward.device.hardening.finding import Finding
from edgeward.errors import InputError

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class Listener:
    proto: str  # tcp or udp
    address: str  # the bound address: 0.0.0.0, ::, 127.0.0.1 ...
    port: int
    process: str = ""  # the owning program's name, "" if not known
    pid: int | None = None

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.address.split("%")[0]).is_loopback
        except ValueError:
            return False

    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        owner = f"{self.process} (pid {self.pid})" if self.process else (
            f"pid {self.pid}" if self.pid is not None else "an unknown process")
        return f"{self.proto} {host}:{self.port} by {owner}"


@dataclass(frozen=True)
class Allowed:
    """An expected listener: a port, a program, or both (and a protocol, or either)."""

    port: int | None = None
    process: str = ""
    proto: str = ""

    def covers(self, listener: Listener) -> bool:
        return ((self.port is None or self.port == listener.port)
                and (not self.process or self.process == listener.process)
                and (not self.proto or self.proto == listener.proto))


def parse_allowed(text: str) -> Allowed:
    """``22``, ``tcp/22``, ``sshd``, ``sshd:22``, ``udp/sshd:22`` -> :class:`Allowed`."""
    proto, _, rest = text.rpartition("/")
    if proto and proto not in PROTOCOLS:
        raise InputError(f"allowed service {text!r}: protocol must be tcp or udp")
    process, _, port = rest.rpartition(":") if ":" in rest else (
        ("", "", rest) if rest.isdigit() else (rest, "", ""))
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise InputError(f"allowed service {text!r}: {port!r} is not a port number")
    if not (process or port):
        raise InputError(f"allowed service {text!r} names neither a port nor a program")
    return Allowed(int(port) if port else None, process, proto)


def check(listeners: Iterable[Listener], allowed: Iterable[Allowed] = ()) -> list[Finding]:
    expected = tuple(allowed)
    found = []
    for listener in sorted(set(listeners), key=lambda s: (s.proto, s.port, s.address)):
        if any(a.covers(listener) for a in expected):
            continue
        if listener.loopback:
            found.append(Finding(
                "services.unexpected-local", "low",
                f"an unexpected service listens on loopback port {listener.port}",
                listener.label(), "Only the gateway itself reaches it: stop it if nothing "
                                  "needs it, else add it to the expected services."))
        else:
            found.append(Finding(
                "services.unexpected", "high",
                f"an unexpected service listens on {listener.proto} port {listener.port}",
                listener.label(), "Find out what opened it; stop and remove it, or bind it "
                                  "to loopback, unless it is meant to be there (then add "
                                  "it to the expected services)."))
    return found
