"""An app's manifest (``app.toml``): parsed and checked strictly, bytes in, verdict out.

::

    name = "minibar"                    # lowercase, digits, '-': also its user and cgroup
    version = "2.0.1"
    publisher = "acme"                  # the tenant whose TUF role signs it
    summary = "Minibar stock and billing"
    plugs = ["network", "bluez", "serial-port:ttyUSB0"]

    [resources]                         # cgroup limits (defaults are small: deny by default)
    memory = "64M"
    cpu = 0.5                           # cores
    pids = 64

    [egress]
    allow = ["api.minibar.example:443", "10.20.0.0/16:1883"]

    [commands.status]
    exec = "bin/status --short"         # inside the image; no shell

    [daemons.server]
    exec = "bin/server --port 8080"
    restart = "on-failure"              # or "always", "never"

Anything unknown or malformed is refused with the line it is on and the reason.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from typing import Any

from edgeward.errors import ManifestError

MANIFEST = "app.toml"
INTERFACES = ("network", "network-bind", "serial-port", "bluez", "network-manager", "gpio",
              "hardware-observe", "log-observe")
_WITH_ARG = {"serial-port": re.compile(r"^tty[A-Za-z]{1,8}[0-9]{1,3}$"),
             "gpio": re.compile(r"^[0-9]{1,3}$")}
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]"
                   r"([a-z0-9-]{0,61}[a-z0-9])?$")
_SIZE = re.compile(r"^([1-9][0-9]{0,5})([KMG])$")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_TOP = {"name", "version", "publisher", "summary", "plugs", "resources", "egress", "commands",
        "daemons", "credentials"}
_CREDENTIAL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_CREDENTIALS = 16
DEFAULTS = {"memory": 64 << 20, "cpu": 0.5, "pids": 64}
MAX_PLUGS = 32  # what the fleet server takes in an app's status
LIMITS = {"memory": (1 << 20, 4 << 30), "cpu": (0.01, 64.0), "pids": (1, 4096)}


@dataclass(frozen=True)
class Plug:
    interface: str
    argument: str = ""

    def __str__(self) -> str:
        return f"{self.interface}:{self.argument}" if self.argument else self.interface


@dataclass(frozen=True)
class Egress:
    host: str  # a DNS name or a network in CIDR form
    port: int


@dataclass(frozen=True)
class Program:
    name: str
    argv: tuple[str, ...]  # argv[0] is a path inside the image
    daemon: bool = False
    restart: str = "never"


@dataclass(frozen=True)
class AppManifest:
    name: str
    version: str
    publisher: str
    summary: str
    plugs: tuple[Plug, ...]
    memory: int
    cpu: float
    pids: int
    egress: tuple[Egress, ...]
    programs: tuple[Program, ...] = field(default_factory=tuple)
    credentials: tuple[str, ...] = ()  # made per gateway at first start (device/secrets)

    def interfaces(self) -> set[str]:
        return {p.interface for p in self.plugs}


class _Where:
    """Line numbers for error messages: TOML parsers do not keep them, so find the
    key's line in the source (within its table)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, key: str, table: str = "") -> int:
        current = ""
        for number, raw in enumerate(self.lines, 1):
            stripped = raw.strip()
            if stripped.startswith("["):
                current = stripped.strip("[]").strip()
                continue
            if current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', stripped):
                return number
            if table and current == table and not key:
                return number
        for number, raw in enumerate(self.lines, 1):  # the table header itself
            if table and raw.strip().strip("[]").strip() == f"{table}.{key}".strip("."):
                return number
        return 0

    def fail(self, message: str, key: str, table: str = "") -> ManifestError:
        line = self.line(key, table)
        return ManifestError(f"{MANIFEST}{f' line {line}' if line else ''}: {message}")


def parse(data: bytes) -> AppManifest:
    try:
        text = data.decode("utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise ManifestError(f"{MANIFEST}: not UTF-8 text") from e
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{MANIFEST}: {e}") from e
    where = _Where(text)
    for key in raw:
        if key not in _TOP:
            raise where.fail(f"unknown key {key!r} (known: {', '.join(sorted(_TOP))})", key)

    def text_of(key: str, pattern: re.Pattern[str] | None, limit: int = 64) -> str:
        value = raw.get(key)
        if not isinstance(value, str) or not value or len(value) > limit or (
                pattern is not None and not pattern.match(value)):
            raise where.fail(f"{key} is missing or not valid", key)
        return value

    name = text_of("name", _NAME)
    version = text_of("version", _VERSION)
    publisher = text_of("publisher", _NAME)
    summary = text_of("summary", None, 200)
    resources = _resources(raw.get("resources", {}), where)
    return AppManifest(name, version, publisher, summary, _plugs(raw.get("plugs", []), where),
                       resources["memory"], resources["cpu"], resources["pids"],
                       _egress(raw.get("egress", {}), where), _programs(raw, where),
                       _credentials(raw.get("credentials", []), where))


def _credentials(value: Any, where: _Where) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_CREDENTIALS or not all(
            isinstance(v, str) and _CREDENTIAL.match(v) for v in value):
        raise where.fail(f"credentials is a list of at most {MAX_CREDENTIALS} names "
                         "(a-z, 0-9, '_', '-')", "credentials")
    if len(set(value)) != len(value):
        raise where.fail("a credential is listed twice", "credentials")
    return tuple(value)


def _plugs(value: Any, where: _Where) -> tuple[Plug, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise where.fail("plugs must be a list of interface names", "plugs")
    found = []
    for item in value:
        interface, _, argument = item.partition(":")
        if interface not in INTERFACES:
            raise where.fail(f"unknown interface {interface!r} (known: "
                             f"{', '.join(INTERFACES)})", "plugs")
        pattern = _WITH_ARG.get(interface)
        if (pattern is None) != (not argument) or (pattern and not pattern.match(argument)):
            need = "a device such as serial-port:ttyUSB0" if interface == "serial-port" else (
                "a line number such as gpio:17" if interface == "gpio" else "no argument")
            raise where.fail(f"plug {item!r}: {interface} takes {need}", "plugs")
        found.append(Plug(interface, argument))
    if len(set(found)) != len(found):
        raise where.fail("a plug is listed twice", "plugs")
    if len(found) > MAX_PLUGS:
        raise where.fail(f"at most {MAX_PLUGS} plugs", "plugs")
    return tuple(found)


def _resources(value: Any, where: _Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.fail("resources must be a table", "resources")
    out: dict[str, Any] = dict(DEFAULTS)
    for key, item in value.items():
        if key not in DEFAULTS:
            raise where.fail(f"unknown resource {key!r} (memory, cpu, pids)", key, "resources")
        low, high = LIMITS[key]
        if key == "memory":
            match = _SIZE.match(item) if isinstance(item, str) else None
            if match is None:
                raise where.fail("memory is a size such as \"64M\"", key, "resources")
            item = int(match.group(1)) * _UNITS[match.group(2)]
        elif key == "cpu":
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise where.fail("cpu is a number of cores such as 0.5", key, "resources")
            item = float(item)
        elif isinstance(item, bool) or not isinstance(item, int):
            raise where.fail("pids is a whole number", key, "resources")
        if not low <= item <= high:
            raise where.fail(f"{key} {item} is outside {low}..{high}", key, "resources")
        out[key] = item
    return out


def _egress(value: Any, where: _Where) -> tuple[Egress, ...]:
    if not isinstance(value, dict) or set(value) - {"allow"}:
        raise where.fail("egress is a table with one key, allow", "egress")
    allow = value.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
        raise where.fail("egress.allow is a list of \"host:port\"", "allow", "egress")
    out = []
    for item in allow:
        host, _, port = item.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise where.fail(f"egress {item!r}: give a port, e.g. host:443", "allow", "egress")
        try:
            host = str(ipaddress.ip_network(host, strict=True))
        except ValueError:
            if not _HOST.match(host) or host.replace(".", "").isdigit():
                raise where.fail(f"egress {item!r}: {host!r} is neither a host name nor a "
                                 "network", "allow", "egress") from None
        out.append(Egress(host, int(port)))
    return tuple(out)


def _programs(raw: dict[str, Any], where: _Where) -> tuple[Program, ...]:
    out = []
    for section, daemon in (("commands", False), ("daemons", True)):
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise where.fail(f"{section} must be a table of tables", section)
        for name, body in table.items():
            out.append(_program(section, name, body, daemon, where))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise where.fail("a command and a daemon share a name", "daemons")
    return tuple(out)


def _program(section: str, name: str, body: Any, daemon: bool, where: _Where) -> Program:
    table = f"{section}.{name}"
    if not _NAME.match(name):
        raise where.fail(f"{section} name {name!r} is not valid", name, section)
    allowed = {"exec", "restart"} if daemon else {"exec"}
    if not isinstance(body, dict) or set(body) - allowed or "exec" not in body:
        raise where.fail(f"{table} takes {', '.join(sorted(allowed))} (exec required)", "",
                         table)
    try:
        argv = tuple(shlex.split(str(body["exec"])))
    except ValueError as e:
        raise where.fail(f"{table}.exec: {e}", "exec", table) from e
    if not argv or argv[0].startswith("/") or ".." in argv[0].split("/"):
        raise where.fail(f"{table}.exec must start with a path inside the image, "
                         "such as bin/server", "exec", table)
    restart = body.get("restart", "on-failure" if daemon else "never")
    if restart not in ("always", "on-failure", "never"):
        raise where.fail(f"{table}.restart is always, on-failure or never", "restart", table)
    return Program(name, argv, daemon, restart)
