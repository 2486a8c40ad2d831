"""What each interface grants (snapd's model): exactly its rules, nothing else. Pure.

Every app gets :data:`BASE`: its image, the system's programs and libraries, the few
files of ``/etc`` that ordinary programs read, its own ``/proc``, a private ``/tmp``
and its data directory. An interface adds to that, and only when the app's manifest
plugs it *and* the operator granted it:

=================  ==============================================================
network            the gateway's network, to the destinations of its egress list
network-bind       listening on any TCP port (otherwise binding one is refused)
serial-port:NAME   the device node /dev/NAME (read, write, ioctl), nothing else
gpio:N             line N of the board's GPIO at /run/edgeward/gpio/gpioN
hardware-observe   reading /sys and udev's device database
log-observe        reading /var/log (as a member of the adm group)
bluez              the system D-Bus, filtered to BlueZ (org.bluez)
network-manager    the system D-Bus, filtered to NetworkManager
=================  ==============================================================

Paths are as the app sees them (inside its sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass

GPIO_VIEW = "/run/edgeward/gpio"
BUS_VIEW = "/run/dbus/system_bus_socket"
BLUEZ = "org.bluez"
NETWORK_MANAGER = "org.freedesktop.NetworkManager"
DBUS_INTERFACES = {"bluez": BLUEZ, "network-manager": NETWORK_MANAGER}

ETC_READABLE = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone",
                "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf",
                "gai.conf", "protocols", "services", "ssl", "ca-certificates",
                "ca-certificates.conf", "alternatives", "mime.types", "locale.alias",
                "locale.conf", "os-release", "debian_version", "python3", "python3.11",
                "magic", "inputrc", "terminfo", "default/locale")


# the sandbox's own: its private /tmp (a tmpfs of its own) and /dev (bubblewrap's), whose
# pseudo-devices programs open, write and ask ioctls of (isatty() on /dev/null)
PRIVATE_WRITABLE = ("/tmp", "/dev/shm")  # noqa: S108
PRIVATE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/pts", "/dev/ptmx",
                   "/dev/random", "/dev/urandom")


@dataclass(frozen=True)
class Rules:
    read: tuple[str, ...] = ()  # read and execute beneath these
    write: tuple[str, ...] = ()  # read, write, create, delete beneath these
    devices: tuple[str, ...] = ()  # open read/write and ioctl these device nodes
    groups: tuple[str, ...] = ()  # supplementary groups, by name
    dbus: tuple[str, ...] = ()  # D-Bus names it may talk to
    network: bool = False  # the gateway's network (egress list applies)
    bind_any: bool = False  # bind any TCP port

    def __or__(self, other: Rules) -> Rules:
        def merged(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys((*a, *b)))

        return Rules(merged(self.read, other.read), merged(self.write, other.write),
                     merged(self.devices, other.devices), merged(self.groups, other.groups),
                     merged(self.dbus, other.dbus), self.network or other.network,
                     self.bind_any or other.bind_any)


def base(image: str, data: str) -> Rules:
    """What every app may use: its image, the system's programs, its data."""
    return Rules(
        read=("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
              *(f"/etc/{name}" for name in ETC_READABLE), "/proc", "/dev/pts",
              "/sys/devices/system/cpu/online",
              "/sys/devices/system/cpu/possible", "/sys/devices/system/cpu/present", image),
        write=(data, *PRIVATE_WRITABLE), devices=PRIVATE_DEVICES)


def rules(plug: str) -> Rules:
    """The rules of one plug (``serial-port:ttyUSB0``, ``network``, ...)."""
    interface, _, argument = plug.partition(":")
    if interface == "network":
        return Rules(network=True)
    if interface == "network-bind":
        return Rules(bind_any=True)
    if interface == "serial-port":
        return Rules(devices=(f"/dev/{argument}",), groups=("dialout",))
    if interface == "gpio":
        return Rules(write=(f"{GPIO_VIEW}/gpio{argument}",))
    if interface == "hardware-observe":
        return Rules(read=("/sys", "/run/udev/data"))
    if interface == "log-observe":
        return Rules(read=("/var/log",), groups=("adm",))
    if interface in DBUS_INTERFACES:
        return Rules(dbus=(DBUS_INTERFACES[interface],))
    return Rules()  # unknown to this agent: grants nothing


def granting(plugs: list[str] | tuple[str, ...], image: str, data: str) -> Rules:
    """The base rules and those of every plug given."""
    out = base(image, data)
    for plug in plugs:
        out = out | rules(plug)
    return out


def covers(rules_: Rules, path: str, write: bool = False) -> bool:
    """Whether ``rules_`` let the app open ``path`` (for reading, or writing)."""
    def beneath(roots: tuple[str, ...]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    if beneath(rules_.write) or beneath(rules_.devices):
        return True
    return not write and beneath(rules_.read)
