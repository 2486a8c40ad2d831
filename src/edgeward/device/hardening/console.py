"""Consoles: a login (or a shell) on a serial line, and what the kernel command line opens.

A serial console is the first thing someone with the board on their bench tries: a
getty there is a password prompt away from root, a shell there is root.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence

from edgeward.device.hardening.finding import Finding

# UARTs by their Linux driver names: 8250/16550, PL011, i.MX, OMAP, Samsung, SuperH,
# Zynq, Qualcomm, Tegra, Marvell, USB serial and gadgets, hypervisor consoles.
SERIAL_TTY = re.compile(r"^(?:/dev/)?(ttyS|ttyAMA|ttymxc|ttyO|ttySAC|ttySC|ttyPS|ttyMSM|"
                        r"ttyHS|ttyTHS|ttyMV|ttyLP|ttyUSB|ttyACM|ttyGS|ttyAML|ttyFIQ|hvc|"
                        r"ttyRPMSG|ttySTM|ttyLF)\d*$")
VIRTUAL_TTY = re.compile(r"^(?:/dev/)?tty\d+$")
GETTYS = frozenset({"getty", "agetty", "mingetty", "mgetty", "fgetty", "ngetty", "login"})
SHELLS = frozenset({"sh", "ash", "bash", "dash", "hush", "zsh", "ksh", "mksh"})

CONSOLE_ADVICE = ("Remove the getty from this console (or point it at a login that needs a "
                  "per-device credential) and make sure every account is locked; a "
                  "production image has no login on a serial line.")


def is_serial(tty: str) -> bool:
    return bool(SERIAL_TTY.match(tty))


def _tty_of(args: Sequence[str]) -> str:
    """The terminal a getty serves: the first argument naming one (``getty -L ttyS0
    115200 vt100`` and busybox's ``getty 115200 ttyS0`` alike)."""
    for arg in args:
        if is_serial(arg) or VIRTUAL_TTY.match(arg) or arg in ("console", "/dev/console"):
            return arg.removeprefix("/dev/")
    return ""


def _interactive(args: Sequence[str]) -> bool:
    """A shell with no script or command to run: it reads the console."""
    return all(a.startswith("-") and a != "-c" for a in args)


def inittab(text: str, path: str = "/etc/inittab") -> list[Finding]:
    """``id:runlevels:action:process`` lines (SysV and busybox): gettys and shells on
    consoles that respawn or wait for a key."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or line.count(":") < 3:
            continue
        ident, _levels, action, process = line.split(":", 3)
        if action in ("off", "sysinit", "boot", "bootwait", "once", "ctrlaltdel", "shutdown",
                      "restart", "powerfail", "powerwait", "powerokwait", "powerfailnow",
                      "initdefault"):
            continue
        words = process.split()
        if not words:
            continue
        program = posixpath.basename(words[0].lstrip("-"))
        where = f"{path} line {number}: {line}"
        tty = _tty_of(words[1:]) or ident  # busybox names the terminal in the id field
        if program in SHELLS and _interactive(words[1:]):
            found.append(Finding(
                "console.shell", "high", f"a shell without login on {tty or 'the console'}",
                where, "Remove this line: anyone at the console gets a root shell without "
                       "a password."))
        elif program in GETTYS and (is_serial(tty) or tty in ("console", "")):
            found.append(Finding("console.getty", "high",
                                 f"a login prompt on the serial console {tty or 'console'}",
                                 where, CONSOLE_ADVICE))
        elif program in GETTYS and VIRTUAL_TTY.match(tty):
            found.append(Finding("console.getty-vt", "low",
                                 f"a login prompt on the virtual terminal {tty}", where,
                                 "A headless gateway needs no login on a screen and "
                                 "keyboard: remove it."))
    return found


def systemd_units(enabled: Iterable[str], masked: Iterable[str] = ()) -> list[Finding]:
    """Units enabled by a ``*.wants/`` link (``enabled`` are the links' paths), less those
    masked: serial gettys, a console getty, the debug shell."""
    masked_names = set(masked)
    found = []
    for link in sorted(set(enabled)):
        unit = posixpath.basename(link)
        if unit in masked_names:
            continue
        template, _, instance = unit.removesuffix(".service").partition("@")
        where = f"{link} (enabled)"
        if template == "serial-getty" or (template == "getty" and is_serial(instance)):
            found.append(Finding("console.getty", "high",
                                 f"a login prompt on the serial console {instance or '?'}",
                                 where, CONSOLE_ADVICE + f" (systemctl disable --now {unit}; "
                                 "mask it if the kernel command line names the console)"))
        elif template == "console-getty":
            found.append(Finding("console.getty", "high", "a login prompt on /dev/console",
                                 where, CONSOLE_ADVICE))
        elif template == "debug-shell":
            found.append(Finding("console.debug-shell", "high",
                                 "systemd's debug shell: a root shell on tty9 without login",
                                 where, f"systemctl mask {unit}"))
        elif template == "getty" and VIRTUAL_TTY.match(instance):
            found.append(Finding("console.getty-vt", "low",
                                 f"a login prompt on the virtual terminal {instance}", where,
                                 f"A headless gateway needs none: systemctl mask {unit}."))
    return found


SINGLE_USER = frozenset({"single", "s", "1", "emergency", "rescue", "-s",
                         "systemd.unit=rescue.target", "systemd.unit=emergency.target"})
LSM_OFF = frozenset({"selinux=0", "apparmor=0", "enforcing=0", "security=none",
                     "module.sig_enforce=0"})


def cmdline(text: str, where: str = "kernel command line") -> list[Finding]:
    """The kernel command line: serial consoles, a shell as init, single-user boots,
    debug shells and debuggers, security modules turned off."""
    found = []
    for arg in text.split():
        key, _, value = arg.partition("=")
        lower = arg.lower()
        detail = f"{where}: {arg}"
        if key == "console":
            tty = value.split(",")[0]
            if is_serial(tty):
                found.append(Finding(
                    "console.cmdline", "high", f"the kernel console is the serial line {tty}",
                    detail, "Drop console= for serial lines from the production command line "
                            "(or use console=null): the kernel log goes there and systemd "
                            "starts a login prompt on it on its own."))
        elif key in ("init", "rdinit") and posixpath.basename(value) in SHELLS:
            found.append(Finding("cmdline.init-shell", "high", f"{key}= starts a shell",
                                 detail, f"Remove {key}={value}: it boots straight into a "
                                         "root shell."))
        elif lower in SINGLE_USER:
            found.append(Finding("cmdline.single-user", "high",
                                 "the kernel command line asks for a single-user or rescue "
                                 "boot", detail, f"Remove {arg!r} from the command line."))
        elif key in ("systemd.debug_shell", "systemd.debug-shell") and value != "0":
            found.append(Finding("cmdline.debug-shell", "high",
                                 "systemd's debug shell is turned on", detail,
                                 f"Remove {arg!r}: it opens a root shell without login."))
        elif key in ("kgdboc", "kgdbwait", "kgdbcon", "kgdbdbgp"):
            found.append(Finding("cmdline.kgdb", "high", "the kernel debugger is reachable",
                                 detail, f"Remove {arg!r} from the production command line."))
        elif lower in LSM_OFF or (key == "lsm" and not value):
            found.append(Finding("cmdline.lsm-off", "medium",
                                 "a kernel security mechanism is turned off", detail,
                                 f"Remove {arg!r} from the command line."))
        elif key in ("earlycon", "earlyprintk"):
            found.append(Finding("console.earlycon", "low",
                                 "early boot messages go to a serial line", detail,
                                 f"Remove {arg!r}: it tells whoever listens how the board "
                                 "boots."))
    return found
