"""The agent's monitoring, in a thread of its own: telemetry every interval, security
events at once, logs, and the hardening audit daily.

- every ``interval`` (30 s): a report (:mod:`report`) into the spool (:mod:`spool`);
- every ``scan_every`` (2 s): listening sockets, remote hosts and executables started
  from a writable filesystem; one the gateway was never seen with is a security event
  at once (what it has seen is kept on disk: a reboot does not make all of it new);
- ``audit_after`` the start and every ``audit_every`` then: the hardening audit, its
  findings to the server;
- then whatever is pending goes out: events first, then reports, then log lines; while
  the server is away it all waits (bounded) and goes when it is back. Log lines over
  the gateway's quota (HTTP 429) wait as long as the server asks, the rest going on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeward.api_client import ApiClient
from edgeward.board.base import Board
from edgeward.device.apps import cgroups, store
from edgeward.device.boot.chain import last_boot
from edgeward.device.events import Outbox, SecurityEvent
from edgeward.device.telemetry import sockets
from edgeward.device.telemetry.logins import AuthLog, failures
from edgeward.device.telemetry.logship import LogShipper
from edgeward.device.telemetry.report import AppUsage, build
from edgeward.device.telemetry.sampler import Sampler
from edgeward.device.telemetry.spool import ReportSpool
from edgeward.errors import Error, InputError, Throttled, Unreachable
from edgeward.files import write_atomic

log = logging.getLogger("edgeward.agent")
SEEN_CAP = 4096


@dataclass
class MonitorSettings:
    interval: float = 30.0
    scan_every: float = 2.0
    audit_every: float = 86400.0  # 0: never
    audit_after: float = 300.0  # the first audit, after the busy first minutes
    whole_host: bool = False  # a real gateway: every process is the gateway's
    auth_log: Path | None = None  # where sshd and login write failures (none: not read)


class Monitoring:
    def __init__(self, board: Board, client: Callable[[], ApiClient], boot_id: str,
                 settings: MonitorSettings | None = None,
                 say: Callable[[str], None] = lambda _: None) -> None:
        self.board, self.client, self.boot_id, self.say = board, client, boot_id, say
        self.settings = settings or MonitorSettings()
        folder = board.data_dir / "edgeward"
        self.sampler = Sampler(board.data_dir)
        self.usage = AppUsage()
        self.spool = ReportSpool(folder / "telemetry.spool")
        self.outbox = Outbox(folder / "monitor-events.spool")
        self.logs = LogShipper.for_board(board)
        self.seen_path = folder / "seen.json"
        self.seen: set[str] = self._load_seen()
        self.execs: set[tuple[int, str]] = set()
        self.auth = AuthLog(self.settings.auth_log) if self.settings.auth_log else None
        self.audit_due = 0.0
        self.pending_audit: dict[str, Any] | None = None
        self.logs_held_until = 0.0  # monotonic; the server asked for the logs to wait
        self._auditing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict[str, Any] = {}  # the latest report, for status and tests

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.sampler.sample()  # the counters' starting point
        self.usage.measure(store.installed(self.board), 0.0)
        self._scan(first=not self.seen)
        if self.auth is not None:
            self.auth.new_lines()  # what is there already is history
        self._boot()
        self._thread = threading.Thread(target=self._loop, name="monitoring", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.outbox.ready.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.spool.save()
        self.outbox.save()

    def agent_line(self, text: str, level: str = "info") -> None:
        self.logs.ship_agent(text, level)

    # --- what is measured -----------------------------------------------------------
    def _apps(self) -> dict[int, str]:
        owners: dict[int, str] = {}
        for app in store.installed(self.board):
            with contextlib.suppress(Error, OSError):
                owners.update({pid: app for pid in cgroups.existing(app).members()})
        return owners

    def _scope(self, owners: dict[int, str]) -> set[int] | None:
        return None if self.settings.whole_host else sockets.gateway_pids(owners)

    def _scan(self, first: bool = False) -> list[sockets.Socket]:
        """Sockets now; what was never seen becomes an event (the first scan ever only
        learns: it is what the gateway came with)."""
        owners = self._apps()
        scope = self._scope(owners)
        found = sockets.scan(owners, scope)
        before = len(self.seen)
        for s in found:
            key = f"{s.kind}:{s.key}"
            if key in self.seen or len(self.seen) >= SEEN_CAP:
                continue
            self.seen.add(key)
            if not first:
                what = (f"new listening port {s.proto}/{s.port} on {s.address}"
                        if s.kind == "listen" else f"new remote host {s.address}:{s.port}")
                self.outbox.add(SecurityEvent(time.time(), s.app, s.kind,
                                              f"{what} ({s.process or '?'})", s.to_dict()))
        for pid, exe, app in sockets.writable_execs(owners, scope):
            if (pid, exe) not in self.execs:
                self.execs.add((pid, exe))
                self.outbox.add(SecurityEvent(
                    time.time(), app, "exec",
                    f"{exe} started from a writable filesystem (pid {pid})",
                    {"exe": exe, "pid": pid}))
        if len(self.seen) != before:
            self._save_seen()
        return found

    def _logins(self) -> None:
        """New failed logins: one event per source and user, with the count."""
        if self.auth is None:
            return
        for (source, user), count in failures(self.auth.new_lines()).items():
            self.outbox.add(SecurityEvent(time.time(), "", "login",
                                          f"failed login for {user} from {source}",
                                          {"source": source, "user": user}, count))

    def _boot(self) -> None:
        """This power cycle's boot, if it fell back to the other slot (a trial boot that
        failed its checks, or a slot that no longer verifies): said once, at start."""
        booted = last_boot(self.board) or {}
        if booted.get("fallback"):
            self.outbox.add(SecurityEvent(time.time(), "", "boot",
                                          f"booted slot {booted.get('slot')} after a "
                                          f"fallback: {booted['fallback']}",
                                          {"slot": booted.get("slot")}))

    def sample(self) -> dict[str, Any]:
        """Measure now and queue the report."""
        sample = self.sampler.sample()
        interval = float(sample.get("interval") or self.settings.interval)
        apps = self.usage.measure(store.installed(self.board), interval)
        report = build(float(sample["at"]), interval, self.boot_id, sample, apps,
                       self._scan())
        self.spool.add(report)
        self.last = report
        dropped = self.spool.told_dropped()
        if dropped:
            self.outbox.add(SecurityEvent(time.time(), "", "suppressed",
                                          f"{dropped} telemetry reports dropped while the "
                                          "fleet server was away", {}, dropped))
        return report

    def audit(self) -> list[dict[str, str]]:
        """Run the hardening audit (daily, or when an operator orders it: one at a time)
        and queue its findings; the loop is woken to send them."""
        from edgeward.device.hardening import booted  # mounts: only when it runs

        with self._auditing:
            findings = [f.to_dict() for f in booted.audit_board(self.board)]
        self.pending_audit = {
            "batch": os.urandom(16).hex(), "at": time.time(), "findings": findings}
        for f in findings:
            if f["severity"] == "high":
                self.outbox.add(SecurityEvent(time.time(), "", "audit",
                                              f"hardening audit: {f['title']}", f))
        self.outbox.ready.set()
        return findings

    # --- the loop -------------------------------------------------------------------
    def _loop(self) -> None:
        next_report = time.monotonic() + self.settings.interval
        next_scan = 0.0
        self.audit_due = time.monotonic() + self.settings.audit_after \
            if self.settings.audit_every else float("inf")
        failures = 0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_report:
                    next_report = max(next_report + self.settings.interval, now + 1.0)
                    self.sample()
                elif now >= next_scan:
                    self._scan()
                    self._logins()
                next_scan = now + self.settings.scan_every
                if now >= self.audit_due:
                    self.audit_due = now + self.settings.audit_every
                    self._guarded(self.audit)
                self._deliver()
                failures = 0
            except Unreachable as e:
                failures += 1
                log.info("monitoring not delivered: %s", e.message)
                self.spool.save()
                self.outbox.save()
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            except Exception:  # monitoring must outlive any one failure
                log.exception("monitoring step failed; going on")
            wait = max(0.05, min(next_report, next_scan) - time.monotonic())
            self.outbox.ready.wait(wait)

    def _guarded(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Error as e:
            self.say(f"hardening audit: {e.message}")

    def _deliver(self) -> None:
        """Post what is pending; a connection is made only when something is."""
        client: ApiClient | None = None

        def post(path: str, body: dict[str, Any], done: Callable[[], object]) -> None:
            nonlocal client
            client = client or self.client()
            self._post(client, path, body, done)

        try:
            events = self.outbox.take()
            if events:
                post("/v1/gateway/events", {"batch": self.outbox.batch_id,
                                            "events": [e.to_dict() for e in events]},
                     lambda: self.outbox.sent(events))
            while len(self.spool):
                batch, reports = self.spool.take()
                post("/v1/gateway/telemetry", {"batch": batch, "reports": reports},
                     self.spool.sent)
            lines = self.logs.take() if time.monotonic() >= self.logs_held_until else None
            if lines is not None and lines.lines:
                try:
                    post("/v1/gateway/logs", lines.body(), lambda: self.logs.sent(lines))
                except Throttled as e:  # over this gateway's log quota: the batch waits
                    self.logs_held_until = time.monotonic() + e.retry_after
                    log.info("log lines held back %.0f s: %s", e.retry_after, e.message)
            if self.pending_audit is not None:
                post("/v1/gateway/audit", self.pending_audit,
                     lambda: setattr(self, "pending_audit", None))
        finally:
            if client is not None:
                client.close()

    def _post(self, client: ApiClient, path: str, body: dict[str, Any],
              done: Callable[[], object]) -> None:
        try:
            client.call("POST", path, body)
        except InputError as e:  # refused as malformed: sending it again cannot help
            self.say(f"the fleet server refused {path}: {e.message}")
        done()

    # --- what was seen --------------------------------------------------------------
    def _load_seen(self) -> set[str]:
        with contextlib.suppress(OSError, ValueError, TypeError):
            return {str(x) for x in json.loads(self.seen_path.read_text())}
        return set()

    def _save_seen(self) -> None:
        with contextlib.suppress(OSError):
            write_atomic(self.seen_path, json.dumps(sorted(self.seen)).encode(), mode=0o600)
