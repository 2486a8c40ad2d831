"""The agent's ear on the kernel: audit records about app users, turned into denials.

At start it enables audit and adds its rules (one per errno that means *refused*,
for the app users' uid range, key ``edgeward-deny``); Landlock and seccomp write
their own records. A thread reads the records, assembles events, interprets them
(:mod:`denials`) and hands each denial of a known app to ``on_denial``. An app in
complain mode gets a rule of its own (key ``edgeward-complain``) that records
what it opens, runs, connects to and binds, whether or not it succeeds.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable

from edgeward.device.apps import denials
from edgeward.device.apps.audit import Audit, Reader, Rule
from edgeward.device.apps.users import FIRST_ID, LAST_ID
from edgeward.errors import NotAvailable

log = logging.getLogger("edgeward.agent")
DENY_KEY = "edgeward-deny"
COMPLAIN_KEY = denials.COMPLAIN_KEY
LOSS_CHECK = 2.0  # seconds between looks at how many audit records were lost
_CALLS = ("connect", "sendto", "sendmsg")
_SIGNALS = ("kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal")
COMPLAIN_CALLS = ("open", "openat", "openat2", "creat", "execve", "execveat", "connect",
                  "bind", "sendto", "sendmsg", "mkdir", "mkdirat", "unlink", "unlinkat",
                  "rename", "renameat", "renameat2", "truncate", "symlink", "symlinkat",
                  "link", "linkat", "chmod", "fchmodat", "chown", "fchownat")


def deny_rules(uids: tuple[int, int] = (FIRST_ID, LAST_ID)) -> list[Rule]:
    """A call by an app user that the kernel refused: permissions and Landlock (EACCES),
    policy and the egress filter (EPERM), read-only mounts (EROFS), no network
    (ENETUNREACH), a process outside its view (ESRCH), a socket not in its view
    (ENOENT on connect)."""
    return [Rule(DENY_KEY, uids, exit=errno.EACCES), Rule(DENY_KEY, uids, exit=errno.EPERM),
            Rule(DENY_KEY, uids, exit=errno.EROFS),
            Rule(DENY_KEY, uids, _CALLS, errno.ENETUNREACH),
            Rule(DENY_KEY, uids, ("connect",), errno.ENOENT),
            Rule(DENY_KEY, uids, _SIGNALS, errno.ESRCH)]


def quiet_rules(uids: tuple[int, int] = (FIRST_ID, LAST_ID)) -> list[Rule]:
    """No audit at all for processes started by anyone but the apps' users: with syscall
    rules loaded the kernel would otherwise keep an audit context for every process on
    the gateway (a few hundred ns on every system call, measured)."""
    return [Rule(DENY_KEY, (0, uids[0] - 1), task=True),
            Rule(DENY_KEY, (uids[1] + 1, 0xFFFFFFFE), task=True)]


def complain_rule(uid: int) -> Rule:
    return Rule(COMPLAIN_KEY, (uid, uid), COMPLAIN_CALLS)


class Monitor:
    """Reads audit records in a thread of its own until :meth:`stop`."""

    def __init__(self, on_denial: Callable[[str, denials.Denial], None],
                 uids: tuple[int, int] = (FIRST_ID, LAST_ID),
                 on_lost: Callable[[int], None] = lambda _: None) -> None:
        self.on_denial, self.on_lost = on_denial, on_lost
        self.uids = uids
        self.apps: dict[int, str] = {}  # uid -> app name
        self.complaining: set[int] = set()
        self.lost = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: Reader | None = None
        self._lock = threading.Lock()
        self._was_enabled = 1

    def start(self) -> None:
        with Audit() as audit:
            self._was_enabled = audit.enable()
            for rule in quiet_rules(self.uids) + deny_rules(self.uids):
                audit.add(rule)
        self._reader = Reader()  # subscribed before any app runs: nothing is missed
        self._thread = threading.Thread(target=self._run, name="audit-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with Audit() as audit:  # as it found it: no rules of its own left behind
            for uid in list(self.complaining):
                audit.remove(complain_rule(uid))
            for rule in deny_rules(self.uids) + quiet_rules(self.uids):
                audit.remove(rule)
            if self._was_enabled == 0:
                audit.set_enabled(0)
        self.complaining.clear()
        if self._reader is not None:
            self._reader.close()

    def watch(self, uid: int, app: str, complain: bool = False) -> None:
        """Attribute ``uid``'s denials to ``app``; in complain mode, record what it does."""
        with self._lock:
            self.apps[uid] = app
        with Audit() as audit:
            if complain and uid not in self.complaining:
                audit.add(complain_rule(uid))
                self.complaining.add(uid)
            elif not complain and uid in self.complaining:
                audit.remove(complain_rule(uid))
                self.complaining.discard(uid)

    def forget(self, uid: int) -> None:
        """``uid``'s app is gone: its records are no longer its, its complain rule goes."""
        with self._lock:
            self.apps.pop(uid, None)
        if uid in self.complaining:
            with Audit() as audit:
                audit.remove(complain_rule(uid))
            self.complaining.discard(uid)

    def _kernel_lost(self) -> int:
        try:
            with Audit() as audit:
                return int(audit.status()["lost"])
        except (OSError, NotAvailable, KeyError):
            return 0

    def _run(self) -> None:
        assembler = denials.Assembler()
        reader = self._reader
        assert reader is not None
        kernel_lost, next_check = self._kernel_lost(), time.monotonic() + LOSS_CHECK
        while not self._stop.is_set():
            done: list[denials.Event] = []
            for kind, text in reader.records(0.1):
                done += assembler.feed(kind, text, time.time())
            done += assembler.feed(0, "", time.time())  # those that lingered long enough
            if time.monotonic() >= next_check:  # records the kernel or our socket dropped
                next_check = time.monotonic() + LOSS_CHECK
                now_lost = self._kernel_lost()
                dropped = max(0, now_lost - kernel_lost) + reader.lost - self.lost
                kernel_lost, self.lost = now_lost, reader.lost
                if dropped:
                    self.on_lost(dropped)
            for event in done:
                denial = denials.interpret(event, assembler.domains)
                if denial is None:
                    continue
                with self._lock:
                    app = self.apps.get(denial.uid)
                if app is not None:
                    try:
                        self.on_denial(app, denial)
                    except Exception:  # a failing handler must not stop the ear
                        log.exception("reporting a denial of %s failed", app)
