"""What one start of an app is given, and the command line that gives it. Pure.

The sandbox is bubblewrap's (don't hand-write what it does well): its own mount,
PID, IPC, UTS, cgroup, user and network namespaces (the gateway's network only
with the ``network`` interface), no capabilities, and a view that is the system,
read-only, with private ``/proc``, ``/dev``, ``/tmp`` and ``/run``, its image at
``/app`` and its data directory writable. Inside it ``edgeward-confine restrict``
sets no_new_privs, confines the app with Landlock to exactly what its interfaces
grant (:mod:`interfaces`) and loads the seccomp allow-list, then runs the program.

The system is *visible* but not *readable* beyond those rules, on purpose: an app
that reaches for ``/etc/shadow``, another app's files or a serial port it was not
granted meets a Landlock or permission refusal that the kernel audits and the agent
reports, where a path simply missing from its view would fail silently.

In complain mode nothing is refused (no Landlock, seccomp logs instead of denying,
the network and D-Bus unfiltered, every serial port present): the agent watches
what the app does and works out the interfaces it needs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edgeward.device.apps import interfaces
from edgeward.errors import ToolError
from edgeward.trust.appmanifest import AppManifest, Egress

IMAGE_VIEW = "/app"
CONFINE_VIEW = "/run/edgeward/confine"
PRIVATE = {"proc", "dev", "tmp", "run", "app", "lost+found"}


@dataclass(frozen=True)
class AppUser:
    uid: int
    gid: int


@dataclass(frozen=True)
class Peripherals:
    """The board's devices an app could be granted: serial ports by name, and the
    directory of its GPIO lines (``gpioN/value``, ...)."""

    serial: dict[str, Path] = field(default_factory=dict)
    gpio: Path | None = None


@dataclass(frozen=True)
class Plan:
    """Everything one start of an app gets, decided before it starts."""

    app: str
    image: Path  # on the host
    data: Path  # on the host, and at the same path inside
    command: tuple[str, ...]  # argv[0] relative to the image
    rules: interfaces.Rules
    granted: tuple[str, ...]
    withheld: tuple[str, ...]
    egress: tuple[Egress, ...]
    peripherals: Peripherals
    memory: int
    cpu: float
    pids: int
    complain: bool = False
    bus_socket: Path | None = None  # the app's D-Bus proxy socket, on the host
    secrets: tuple[tuple[Path, str], ...] = ()  # its secret folders, and where it sees them
    isolated: bool = False  # cut from the network by an operator (remediation, quarantine)

    @property
    def needs_bus(self) -> bool:
        """An app that plugs a D-Bus interface sees the (filtered) bus even when the
        interface was withheld: its calls are then refused and reported, not lost."""
        return self.complain or any(p.partition(":")[0] in interfaces.DBUS_INTERFACES
                                    for p in (*self.granted, *self.withheld))

    @property
    def shares_network(self) -> bool:
        return self.rules.network or self.complain


def split_grants(asked: list[str], allowed: set[str]) -> tuple[list[str], list[str]]:
    """The plugs asked for that count (granted as such, or their whole interface) and
    those withheld."""
    given = [p for p in asked if p in allowed or p.partition(":")[0] in allowed]
    return given, [p for p in asked if p not in given]


def plan(manifest: AppManifest, image: Path, data: Path, command: list[str],
         granted: set[str] | None, peripherals: Peripherals, complain: bool = False,
         bus_socket: Path | None = None, secrets: dict[Path, str] | None = None) -> Plan:
    """The plan for ``command``: a plug counts only if the manifest asks for it and it
    was ``granted`` (None: everything the manifest asks for, as in development)."""
    asked = [str(p) for p in manifest.plugs]
    given, withheld = split_grants(asked, set(asked) if granted is None else granted)
    shown = tuple(sorted((secrets or {}).items()))
    rules = interfaces.granting(given, IMAGE_VIEW, str(data)) | interfaces.Rules(
        read=tuple(view for _, view in shown))
    return Plan(manifest.name, image, data, tuple(command), rules, tuple(given),
                tuple(withheld), manifest.egress, peripherals, manifest.memory, manifest.cpu,
                manifest.pids, complain, bus_socket, shown)


def bwrap() -> str:
    tool = shutil.which("bwrap")
    if tool is None:
        raise ToolError("bwrap not found (Debian package bubblewrap): run scripts/bootstrap")
    return tool


def _restrict(p: Plan, seccomp_fd: int) -> list[str]:
    args = [CONFINE_VIEW, "restrict", "-s", str(seccomp_fd)]
    if p.complain:
        return [*args, "-n"]
    for path in p.rules.read:
        args += ["-r", path]
    for path in p.rules.write:
        args += ["-w", path]
    for path in p.rules.devices:
        args += ["-d", path]
    if p.rules.bind_any:
        args.append("-B")
    else:
        args += ["-b", "0"]  # an ephemeral port, as a client's bind() asks for
    return args


def system_view(root: Path = Path("/")) -> list[str]:
    """The host's top-level directories read-only (symbolic links as they are), but for
    those each sandbox gets its own of (/proc, /dev, /tmp, /run) and /app."""
    args: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name in PRIVATE:
            continue
        if entry.is_symlink():
            args += ["--symlink", str(entry.readlink()), f"/{entry.name}"]
        elif entry.is_dir():
            args += ["--ro-bind", str(entry), f"/{entry.name}"]
    return args


def argv(p: Plan, confine: Path, seccomp_fd: int, system: list[str] | None = None
         ) -> list[str]:
    """The command line: bubblewrap, then ``edgeward-confine restrict``, then the app."""
    args = [bwrap(), "--unshare-all", "--unshare-user", "--disable-userns",
            "--die-with-parent", "--new-session", "--hostname", p.app, "--cap-drop", "ALL",
            *(system if system is not None else system_view()),
            "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--tmpfs", "/run",  # noqa: S108 (its own, private)
            "--ro-bind", str(p.image), IMAGE_VIEW, "--bind", str(p.data), str(p.data),
            "--ro-bind", str(confine), CONFINE_VIEW]
    if p.shares_network:
        args.append("--share-net")
    for name, node in sorted(p.peripherals.serial.items()):
        args += ["--dev-bind", str(node), f"/dev/{name}"]  # present; usable if granted
    if p.peripherals.gpio is not None:
        args += ["--bind", str(p.peripherals.gpio), interfaces.GPIO_VIEW]
    if p.bus_socket is not None:
        args += ["--bind", str(p.bus_socket), interfaces.BUS_VIEW]
    for host, view in p.secrets:
        args += ["--ro-bind", str(host), view]
    args += ["--chdir", IMAGE_VIEW, "--clearenv",
             "--setenv", "HOME", str(p.data), "--setenv", "EDGEWARD_DATA", str(p.data),
             "--setenv", "EDGEWARD_APP", p.app, "--setenv", "TMPDIR", "/tmp",  # noqa: S108
             "--setenv", "PATH", f"{IMAGE_VIEW}/bin:/usr/bin:/bin"]
    for _, view in p.secrets:
        args += ["--setenv", f"EDGEWARD_{Path(view).name.upper()}", view]
    if p.bus_socket is not None:
        args += ["--setenv", "DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={interfaces.BUS_VIEW}"]
    return [*args, "--", *_restrict(p, seccomp_fd), "--",
            f"{IMAGE_VIEW}/{p.command[0]}", *p.command[1:]]
