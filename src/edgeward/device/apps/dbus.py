"""An app's own view of the system D-Bus: an xdg-dbus-proxy, run as the app's user, that
lets it talk to the bus itself and to the names its granted interfaces allow (``bluez``:
``org.bluez``; ``network-manager``: ``org.freedesktop.NetworkManager``) and hides the
rest: a call elsewhere gets an error and never reaches the service. The sandbox binds
its socket at ``/run/dbus/system_bus_socket``. :class:`LogParser` (pure) reads the
proxy's ``--log``; :class:`Proxy` runs it and hands each refused call to ``on_call``.
It logs only while filtering, so complain mode filters too, but talks to every
namespace on the bus (``org.freedesktop.*``, ...): calls go through and are handed on.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import select
import shutil
import socket as sockets
import stat
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from edgeward.device.apps.denials import Denial
from edgeward.device.apps.sandbox import AppUser
from edgeward.errors import NotAvailable, StateError, ToolError

log = logging.getLogger("edgeward.agent")
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
BUS_DAEMON = "org.freedesktop.DBus"
TOOL = "xdg-dbus-proxy"
MAX_LINE = 64 * 1024
_NAME = r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+"
_OUT = re.compile(rf"^C\d+: -> ({_NAME}|:[\w.-]+|\(no dest\)|all) (call|signal) "
                  rf"({_NAME}|)\.([A-Za-z_]\w*) at (/[\w/]*)$", re.A)
_MESSAGE = re.compile(r"^[CB]-?\d+: (?:->|<-) ")
_VERDICT = re.compile(r"^\*(?:HIDDEN|DENIED)\*(?: \(ping\))?$")
_ARG0 = re.compile(r"^Filtering message due to arg0 (\S+), policy: \d+ \(required \d+\)$")
_WARNING = re.compile(r"^\*\* \([^)]*\): [A-Z]+ \*\*: (?:[\d:.]+: )?")


@dataclass(frozen=True)
class BusCall:
    """A method call the app made through its proxy (or any message, when refused)."""

    destination: str  # a bus name, a unique name (":1.42") or "?" when the log was garbled
    interface: str
    member: str
    path: str
    refused: bool
    kind: str = "call"  # call | signal | message (a refusal whose message could not be read)
    about: str = ""  # for a call to the bus itself: the name it was about (arg0)

    @property
    def method(self) -> str:
        name = f"{self.interface}.{self.member}" if self.interface else self.member
        return f"{name}({self.about})" if self.about else name or "a message"


class LogParser:
    """Feeds on ``xdg-dbus-proxy --log`` output in chunks of any size and yields the app's
    calls. A call is settled by the line after it: a ``*HIDDEN*`` or ``*DENIED*`` verdict
    (refused) or any other message (let through). The log is text the app can shape (a
    hidden call's path is printed as sent): every verdict is one refused call, whatever
    line came before it."""

    def __init__(self) -> None:
        self._partial = ""
        self._dropping = False  # inside an overlong line
        self._pending: BusCall | None = None  # the last outgoing call or signal
        self._about = ""
        self.notes: deque[str] = deque(maxlen=8)  # the proxy's own messages, last first

    def feed(self, chunk: str) -> list[BusCall]:
        out: list[BusCall] = []
        *lines, rest = (self._partial + chunk).split("\n")
        for line in lines:
            if self._dropping or len(line) > MAX_LINE:  # not read, but ends what came before
                self._dropping = False
                out += self.flush()
            else:
                out += self._line(line.rstrip("\r"))
        self._partial = rest
        if len(rest) > MAX_LINE:
            self._partial, self._dropping = "", True
        return out

    def flush(self) -> list[BusCall]:
        """The call still waiting for a verdict, as let through (if not one to the bus)."""
        call, self._pending, self._about = self._pending, None, ""
        if call is None or call.kind != "call" or call.destination in (BUS_DAEMON, "(no dest)"):
            return []
        return [call]

    def close(self) -> list[BusCall]:
        """End of the log: its last line even without a newline, then :meth:`flush`."""
        out = self.feed("\n") if self._partial or self._dropping else []
        return out + self.flush()

    def _line(self, line: str) -> list[BusCall]:
        if _VERDICT.match(line):  # about the outgoing message just before it, whatever it was
            was = self._pending or BusCall("?", "", "", "", True, "message")
            self._pending, about, self._about = None, self._about, ""
            return [replace(was, refused=True, about=about)]
        if arg0 := _ARG0.match(line):
            self._about = arg0.group(1)
        elif not _MESSAGE.match(line):  # *SKIPPED*, *REWRITTEN*, ..., the proxy's warnings
            if _WARNING.match(line):
                self.notes.appendleft(_WARNING.sub("", line))
        else:
            done = self.flush()
            if outgoing := _OUT.match(line):  # else a reply, the bus's, the proxy's own
                dest, kind, interface, member, path = outgoing.groups()
                self._pending = BusCall(dest, interface, member, path, False, kind)
            return done
        return []


def parse(text: str) -> list[BusCall]:
    """Every call in a whole log."""
    parser = LogParser()
    return parser.feed(text) + parser.close()


def denial(call: BusCall, uid: int = -1, when: float = 0.0) -> Denial:
    """The denial to report for ``call``: refused by the proxy, or let through (allowed)
    as only complain mode does. ``uid`` -1: unknown here (the caller knows the app)."""
    return Denial(uid, "dbus", "call" if call.kind == "call" else "send",
                  f"{call.method} on {call.destination}", "dbus-proxy", time=when,
                  allowed=not call.refused)


def wildcards(names: list[str]) -> tuple[str, ...]:
    """The namespaces (``org.freedesktop.*``) of well-known bus names."""
    return tuple(sorted({".".join(n.split(".")[:2]) + ".*" for n in names
                         if re.fullmatch(_NAME, n) and n != BUS_DAEMON}))


class Proxy:
    """One app's xdg-dbus-proxy: :meth:`start` returns once the bus answers through it;
    refused calls (all, in complain mode) go to ``on_call`` from a thread of its own;
    :meth:`stop` ends it. It ends by itself if the agent dies (it watches a pipe)."""

    def __init__(self, app: str, bus: str, socket: Path, talk: tuple[str, ...],
                 complain: bool, user: AppUser, on_call: Callable[[BusCall], None],
                 timeout: float = 5.0) -> None:
        self.app, self.bus, self.socket, self.talk = app, bus, socket, talk
        self.complain, self.user, self.on_call, self.timeout = complain, user, on_call, timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.parser = LogParser()
        self._sync = -1
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        tool = shutil.which(TOOL)
        if tool is None:
            raise ToolError(f"{TOOL} not found (Debian package {TOOL}): run scripts/bootstrap")
        found = re.match(r"unix:(?:[^;]*,)?path=([^,;]+)", self.bus)
        if found and not Path(found.group(1)).exists():
            raise NotAvailable(f"no D-Bus system bus at {found.group(1)} (is it running?)")
        self._prepare_directory()
        talk = self.talk + (wildcards([*self.talk, *bus_names(self.bus)])
                            if self.complain else ())
        self._sync, theirs = os.pipe()
        try:
            try:
                self.process = subprocess.Popen(
                    [tool, f"--fd={theirs}", self.bus, str(self.socket), "--filter",
                     *(f"--talk={name}" for name in dict.fromkeys(talk)), "--log"],
                    pass_fds=[theirs], stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/",
                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, user=self.user.uid,
                    group=self.user.gid, extra_groups=[], start_new_session=True)
            finally:
                os.close(theirs)
            self._wait_listening()
            self._thread = threading.Thread(target=self._read, name=f"dbus-proxy-{self.app}",
                                            daemon=True)
            self._thread.start()
            self._probe()
        except BaseException as e:
            self.stop()
            if isinstance(e, OSError | subprocess.SubprocessError):
                raise ToolError(f"{TOOL} for {self.app} failed to start: {e}") from e
            raise

    def stop(self) -> None:
        if self._sync >= 0:
            os.close(self._sync)  # the proxy sees it, removes its socket and exits
            self._sync = -1
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=2)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.socket.lstat().st_mode):
                self.socket.unlink()

    def _prepare_directory(self) -> None:
        """The socket's directory: the app user's own, 0700 (made if missing)."""
        folder = self.socket.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True)
            os.chown(folder, self.user.uid, self.user.gid)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != self.user.uid:
            raise StateError(f"{folder} must be a directory of uid {self.user.uid} alone")
        folder.chmod(0o700)  # (a stale socket in it, the proxy replaces)

    def _wait_listening(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        readable, _, _ = select.select([self._sync], [], [], self.timeout)
        said = os.read(self._sync, 1) if readable else b""
        if said == b"x" and self.socket.exists():
            return
        if not readable or said:
            raise ToolError(f"{TOOL} for {self.app} did not listen within {self.timeout:g} s")
        words = self.process.communicate(timeout=self.timeout)[0].decode(errors="replace")
        raise ToolError(f"{TOOL} for {self.app} exited ({self.process.returncode}): "
                        f"{words.strip() or 'no message'}")

    def _probe(self) -> None:
        """Authenticate to the bus through the proxy as the app will (and stop there)."""
        uid = str(self.user.uid).encode().hex()
        with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as probe:
            probe.settimeout(self.timeout)
            try:
                probe.connect(str(self.socket))
                probe.sendall(f"\0AUTH EXTERNAL {uid}\r\n".encode())
                answer = probe.recv(256)
            except OSError as e:
                answer = str(e.strerror or e).encode()
        if answer.startswith(b"OK "):
            return
        time.sleep(0.2)  # the proxy's own words on it, if any, are on their way
        why = next(iter(self.parser.notes), "") or answer.decode(errors="replace").strip()
        raise NotAvailable(f"the D-Bus bus {self.bus} does not answer the app user "
                           f"{self.user.uid} through its proxy: {why or 'connection closed'}")

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        fd, ended = self.process.stdout.fileno(), False
        text = codecs.getincrementaldecoder("utf-8")("replace")
        while not ended:
            if not select.select([fd], [], [], 0.2)[0]:
                calls = self.parser.flush()  # quiet: the last call got no verdict
            elif chunk := os.read(fd, 65536):
                calls = self.parser.feed(text.decode(chunk))
            else:
                calls, ended = self.parser.close(), True
            for call in calls:
                if call.refused or self.complain:
                    try:
                        self.on_call(call)
                    except Exception:  # a failing handler must not stop the proxy's log
                        log.exception("reporting a D-Bus call of %s failed", self.app)


def bus_names(bus: str) -> list[str]:
    """The names on the bus and those it can start (for complain mode), asked as the
    agent: as the app's user, the audit rules of complain mode would take it for the
    app. None when dbus-send is missing or the bus does not answer."""
    tool, names = shutil.which("dbus-send"), []
    for method in ("ListNames", "ListActivatableNames") if tool else ():
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run(
                [str(tool), f"--bus={bus}", "--print-reply", f"--dest={BUS_DAEMON}",
                 "/org/freedesktop/DBus", f"{BUS_DAEMON}.{method}"], capture_output=True,
                timeout=5, cwd="/", env={"PATH": "/usr/bin:/bin"}, check=False)
            names += re.findall(r'^\s*string "([^"]+)"$', done.stdout.decode(errors="replace"),
                                re.M)
    return names
