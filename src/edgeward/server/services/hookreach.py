"""Where alert hooks may reach: the public internet, and the networks the server's
operator allows (``edgeward server run --hook-network CIDR``, repeatable).

A hook is set by a tenant's admin, and the server posts to it from inside its own
network. Without this check, that admin could point a hook at the server's machine
(127.0.0.1, where plain ``http://`` is taken), at the private network around it, or at a
cloud metadata service (169.254.169.254). The server would send requests there, and the
delivery errors it reports would show what answered. This is request forgery. So no hook
reaches an address that is not global unless the operator allows its network.

A hook's host is judged twice:
- as written, when the hook is set (an address, or ``localhost``);
- as resolved, each time an alert is posted. Every address the name resolves to must be
  allowed.

The post then goes to the address that was judged, with the name kept for TLS (SNI and
certificate) and for the Host header. A name that resolves elsewhere between the check
and the connection (DNS rebinding) is therefore not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from edgeward.errors import InputError, NotAvailable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))
_LOCALHOST = ("localhost", "localhost.")
HINT = "the server's operator can allow its network with --hook-network"


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """``--hook-network`` values as networks; InputError naming a bad one."""
    found = []
    for text in texts:
        try:
            found.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as e:
            raise InputError(f"--hook-network {text!r}: give a CIDR such as 10.20.0.0/16"
                             ) from e
    return tuple(found)


def allowed(address: Address, allow: tuple[Network, ...]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global or any(address.version == n.version and address in n
                                     for n in allow)


def loopback(host: str) -> bool:
    """``localhost`` or a loopback address literal (this machine, as written)."""
    if host.lower() in _LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def judge_written(host: str, allow: tuple[Network, ...]) -> None:
    """When a hook is set: an address or ``localhost`` in its URL must be allowed (a name
    is judged as it resolves, when an alert is posted)."""
    try:
        address = ipaddress.ip_address("127.0.0.1" if host.lower() in _LOCALHOST else host)
    except ValueError:
        return
    if not allowed(address, allow):
        raise InputError(f"hook host {host} is {address}, not on the public internet: {HINT}")


def resolve(host: str, port: int, allow: tuple[Network, ...]) -> str:
    """The address to post to, once every address ``host`` resolves to is allowed;
    NotAvailable saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise NotAvailable(f"hook host {host} does not resolve: {e}") from e
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0])
                                   for info in infos))
    if not addresses:
        raise NotAvailable(f"hook host {host} does not resolve")
    refused = [a for a in addresses if not allowed(a, allow)]
    if refused:
        raise NotAvailable(f"hook host {host} resolves to {refused[0]}, not on the public "
                           f"internet: not posted ({HINT})")
    return str(addresses[0])
