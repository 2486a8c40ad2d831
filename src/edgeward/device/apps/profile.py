"""What an app in complain mode turned out to need. Pure: observations in, a profile out.

In complain mode the app runs with nothing refused while the agent records what it
opens, runs, connects to and binds, which system calls it makes that the allow-list
lacks, and which D-Bus names it calls. Each observation is either covered by what
every app gets, or by one interface (a serial port, a GPIO line, /sys, /var/log,
the network, a bus name), or by nothing. The profile is the smallest set of
interfaces and egress rules that would let it run, and the list of what would still
be denied -- snapd leaves this to a person reading logs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from edgeward.device.apps import interfaces
from edgeward.device.apps.denials import Denial
from edgeward.errors import one_line
from edgeward.trust.appmanifest import MAX_PLUGS

_GPIO = re.compile(rf"^{re.escape(interfaces.GPIO_VIEW)}/gpio([0-9]{{1,3}})(/|$)")
_SERIAL = re.compile(r"^/dev/(tty[A-Za-z]{1,8}[0-9]{1,3})$")
_WRITES = {"write", "read-write", "create", "delete", "rename", "change", "truncate"}
_FILE_VERBS = _WRITES | {"read", "open", "execute", "list", "ioctl", "link or rename"}
MAX_DENIED, MAX_EGRESS = 200, 1024
# what the sandbox does before the app runs, and the app's D-Bus proxy (same user)
SANDBOX_PROGRAMS = ("/usr/bin/bwrap", "/run/edgeward/confine", "/usr/bin/xdg-dbus-proxy")


@dataclass
class Profile:
    app: str
    data: str  # the app's data directory (its own: always allowed)
    interfaces: set[str] = field(default_factory=set)
    egress: set[str] = field(default_factory=set)
    denied: dict[str, int] = field(default_factory=dict)
    first: float = 0.0
    last: float = 0.0

    def observe(self, seen: Denial) -> str | None:
        """Take one observation; the interface or egress rule it needs, "denied" if no
        interface would allow it, or None when every app may do it anyway."""
        if seen.allowed and seen.exe in SANDBOX_PROGRAMS:  # exact paths: the app can't
            return None  # put a program of its own there (read-only, or bound over)
        self.first = self.first or seen.time
        self.last = max(self.last, seen.time)
        if seen.kind == "syscall":
            return self._deny(f"system call {seen.target}")
        if seen.kind == "network":
            return self._network(seen)
        if seen.kind == "file":
            return self._file(seen.target, seen.access)
        if seen.kind == "dbus":
            return self.observe_bus(seen.target.split(" on ")[-1])
        return self._deny(seen.what)

    def observe_bus(self, destination: str) -> str | None:
        for plug, name in interfaces.DBUS_INTERFACES.items():
            if destination == name or destination.startswith(name + "."):
                self.interfaces.add(plug)
                return plug
        return self._deny(f"D-Bus calls to {destination}")

    def _deny(self, what: str) -> str:
        if what not in self.denied and len(self.denied) >= MAX_DENIED - 1:
            what = "(other refusals)"  # bounded, however much an app tries
        self.denied[what] = self.denied.get(what, 0) + 1
        return "denied"

    def _network(self, seen: Denial) -> str | None:
        target = seen.target
        if target.startswith("unix socket "):
            path = target.removeprefix("unix socket ")
            return None if path == interfaces.BUS_VIEW else self._deny(f"connect {path}")
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None  # no address recorded (another family, a bad pointer): nothing to allow
        if seen.access == "bind":
            if port in ("", "0"):
                return None
            self.interfaces.add("network-bind")
            return "network-bind"
        self.interfaces.add("network")
        rule = f"{address}/{address.max_prefixlen}:{port}"  # as app.toml's egress takes it
        if len(self.egress) < MAX_EGRESS:
            self.egress.add(rule)
        return rule

    def _file(self, path: str, access: str) -> str | None:
        if access not in _FILE_VERBS:  # a call such as mount that names a path
            return self._deny(f"system call {access}")
        write = access in _WRITES
        base = interfaces.base("/app", self.data)
        if interfaces.covers(base, path, write):
            return None
        if path in (interfaces.BUS_VIEW, "/run/dbus"):
            return None
        serial = _SERIAL.match(path)
        if serial:
            plug = f"serial-port:{serial.group(1)}"
            self.interfaces.add(plug)
            return plug
        gpio = _GPIO.match(path)
        if gpio:
            plug = f"gpio:{gpio.group(1)}"
            self.interfaces.add(plug)
            return plug
        for plug in ("hardware-observe", "log-observe"):
            if not write and interfaces.covers(interfaces.rules(plug), path):
                self.interfaces.add(plug)
                return plug
        return self._deny(f"{access} {path}")

    def to_dict(self, version: str = "") -> dict[str, Any]:
        return {"app": self.app, "version": version,
                "interfaces": sorted(self.interfaces)[:MAX_PLUGS],
                "egress": sorted(self.egress)[:MAX_EGRESS],
                "denied": [{"what": one_line(w)[:300], "count": n} for w, n in
                           sorted(self.denied.items(), key=lambda item: -item[1])][:200],
                "observed_from": self.first, "observed_to": self.last}


def snippet(profile: dict[str, Any]) -> str:
    """The profile as the manifest lines an app developer would paste."""
    lines = [f"plugs = {list(profile.get('interfaces', []))!r}".replace("'", '"')]
    if profile.get("egress"):
        lines += ["", "[egress]", f"allow = {list(profile['egress'])!r}".replace("'", '"')]
    for item in profile.get("denied", []):
        lines.append(f"# would still be denied ({item['count']}x): {item['what']}")
    return "\n".join(lines)
