"""Everything the agent runs for apps while it is up, wired together.

- the audit :class:`Monitor` hears denials from the kernel, D-Bus proxies hear
  refused bus calls, the :class:`Supervisor` reports crash loops and limits;
- each becomes a security event in the :class:`Outbox` (rate-limited per source),
  which a sender thread delivers to the fleet server at once (``POST
  /v1/gateway/events``), keeping them on disk while the server is away;
- an app in complain mode is profiled instead (:mod:`profile`): only what would
  have been denied is reported, and the profile is sent every few seconds;
- the apps' states (and what each was not granted) go to ``POST /v1/gateway/apps``
  whenever they change;
- the control socket lets ``edgeward device apps start|stop|status`` reach it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeward.api_client import ApiClient
from edgeward.board.base import Board
from edgeward.device.apps import launch, reconcile, store, users
from edgeward.device.apps.control import ControlServer
from edgeward.device.apps.denials import Denial
from edgeward.device.apps.monitor import Monitor
from edgeward.device.apps.profile import Profile
from edgeward.device.apps.sandbox import AppUser, Plan
from edgeward.device.apps.supervisor import Bus, Supervisor
from edgeward.device.events import Outbox, SecurityEvent
from edgeward.errors import Error, InputError, NotAvailable, Unreachable
from edgeward.files import write_atomic

log = logging.getLogger("edgeward.agent")
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
PROFILE_EVERY = 5.0


def event_of(app: str, denial: Denial) -> SecurityEvent:
    kind = denial.kind if denial.kind in ("syscall", "file", "network", "signal", "dbus") \
        else "sandbox"
    return SecurityEvent(denial.time or time.time(), app, kind, denial.what, {
        "mechanism": denial.mechanism, "access": denial.access, "target": denial.target,
        "comm": denial.comm, "exe": denial.exe, "pid": denial.pid, "allowed": denial.allowed})


class AppRuntime:
    def __init__(self, board: Board, client: Callable[[], ApiClient],
                 say: Callable[[str], None] = lambda _: None, system_bus: str = SYSTEM_BUS,
                 monitor: bool = True) -> None:
        self.board, self.client, self.say, self.system_bus = board, client, say, system_bus
        self.outbox = Outbox(board.data_dir / "edgeward" / "events.spool")
        self.monitor = Monitor(self.denied, on_lost=self._lost) if monitor else None
        self.supervisor = Supervisor(board, self.outbox.add, self._watch, self._bus,
                                     self._changed)
        self.profiles: dict[str, Profile] = {}
        self.control: ControlServer | None = None
        self._stop = threading.Event()
        self._status_dirty = threading.Event()
        self._sender: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        if self.monitor is not None:
            try:
                self.monitor.start()
                self.watch_installed()
            except NotAvailable as e:  # confined all the same, but deaf: say so
                self.monitor = None
                self.say(f"app denials cannot be heard: {e.message}")
                self.outbox.add(SecurityEvent(time.time(), "", "sandbox",
                                              f"app denials cannot be heard: {e.message}"))
        abi = launch.landlock_abi()
        if abi < launch.LANDLOCK_WANTED:  # confined, but less than promised: say so
            missing = "no Landlock: apps cannot start" if abi == 0 else (
                f"Landlock ABI {abi} < {launch.LANDLOCK_WANTED}: file denials not logged"
                + (", TCP binding not controlled" if abi < 4 else "")
                + (", abstract sockets and signals not scoped" if abi < 6 else ""))
            self.say(missing)
            self.outbox.add(SecurityEvent(time.time(), "", "sandbox", missing))
        self.remount()
        self.supervisor.start()
        self.control = ControlServer(self.board, {
            "status": lambda r: self.supervisor.status(r.get("app")),
            "start": lambda r: self.supervisor.start_app(str(r["app"]), r.get("daemon")),
            "stop": lambda r: self.supervisor.stop_app(str(r["app"]), r.get("daemon")),
            "restart": lambda r: self.supervisor.restart({str(r["app"])}),
            "profile": lambda r: self.profile_of(str(r["app"]))})
        self._status_dirty.set()
        self._sender = threading.Thread(target=self._send_loop, name="events", daemon=True)
        self._sender.start()

    def close(self) -> None:
        if self.control is not None:
            self.control.close()
        self.supervisor.close()
        if self.monitor is not None:
            self.monitor.stop()
        self._stop.set()
        self.outbox.ready.set()
        if self._sender is not None:
            self._sender.join(timeout=10)
        self.outbox.save()
        self._save_profiles()

    def remount(self) -> None:
        """After a power cycle the apps' images are mounted again, each only if it still
        matches what TUF vouched for at install (the data area is outside the verified
        boot): one that does not stays down, and that is reported."""
        for name in store.installed(self.board):
            try:
                store.remount(self.board, name)
            except Error as e:
                self.say(f"app {name}: {e.message}")
                self.outbox.add(SecurityEvent(time.time(), name, "sandbox", e.message))

    def forget(self, app: str) -> None:
        """Before an app is removed: its daemons stopped, its proxy, cgroup and rules gone."""
        self.supervisor.forget(app)
        if self.monitor is not None:
            with contextlib.suppress(Error):
                self.monitor.forget(users.user_for(self.board, app).uid)
        self.profiles.pop(app, None)

    def reconciled(self, changed: set[str]) -> None:
        """After the desired apps were installed or removed: restart what changed."""
        self.supervisor.restart(changed) if changed else self.supervisor.sync()
        self.watch_installed()
        self._status_dirty.set()

    def watch_installed(self) -> None:
        """Attribute every installed app's denials to it, daemons or not (a command run
        by hand is the app too)."""
        for name in store.installed(self.board):
            with contextlib.suppress(Error):
                self._watch(users.user_for(self.board, name).uid, name,
                            reconcile.mode(self.board, name) == "complain")

    # --- what is heard --------------------------------------------------------------
    def denied(self, app: str, denial: Denial) -> None:
        """A denial heard for ``app`` (a D-Bus proxy's too). In complain mode it is first
        an observation: what any app may do anyway is not worth a report."""
        if denial.pid and denial.pid in self.supervisor.bus_pids():
            return  # the app's D-Bus proxy (its user's, not the app) doing its own work
        if denial.allowed or self._complaining(app, denial.uid):
            profile = self.profiles.setdefault(app, Profile(app, str(self._data(app))))
            if profile.observe(denial) is None:
                return
        self.outbox.add(event_of(app, denial))

    def _complaining(self, app: str, uid: int) -> bool:
        """Whether the app runs in complain mode: the monitor knows, for every uid it was
        told to watch (without one, the agent's record of the app says)."""
        if self.monitor is not None:
            return uid in self.monitor.complaining
        return reconcile.mode(self.board, app) == "complain"

    def _lost(self, count: int) -> None:
        """Audit records dropped under load (an app flooding the kernel with denials): the
        reports then undercount, and that itself is reported."""
        self.outbox.add(SecurityEvent(time.time(), "", "sandbox",
                                      "audit records lost under load (an app flooding?)",
                                      {"lost": count}, count))

    def _data(self, app: str) -> Path:
        return store.apps_dir(self.board) / app / "data"

    def _watch(self, uid: int, app: str, complain: bool) -> None:
        if self.monitor is not None:
            self.monitor.watch(uid, app, complain)

    def _bus(self, plan: Plan, user: AppUser, socket: Path) -> Bus:
        from edgeward.device.apps import dbus  # the proxy's module: only when an app asks

        def heard(call: dbus.BusCall) -> None:
            self.denied(plan.app, dbus.denial(call, user.uid, time.time()))

        proxy = dbus.Proxy(plan.app, self.system_bus, socket, plan.rules.dbus, plan.complain,
                           user, heard)
        proxy.start()
        return proxy

    def _changed(self) -> None:
        self._status_dirty.set()
        self.outbox.ready.set()

    # --- reports --------------------------------------------------------------------
    def statuses(self) -> list[dict[str, Any]]:
        units = self.supervisor.status()
        rows = []
        for name in store.installed(self.board):
            with contextlib.suppress(Error):
                app = store.current(self.board, name)
                mine = [u for u in units if u["app"] == name]
                states = {u["state"] for u in mine}
                state = next((s for s in ("crash-loop", "failed", "backoff", "starting",
                                          "running") if s in states),
                             "stopped" if mine else "installed")
                rows.append({"name": name, "version": app.version,
                             "publisher": app.manifest.publisher, "state": state,
                             "mode": reconcile.mode(self.board, name),
                             "granted": sorted(reconcile.granted(self.board, name)),
                             "withheld": reconcile.withheld(self.board, name),
                             "restarts": sum(int(u["restarts"]) for u in mine),
                             "since": max((float(u["since"]) for u in mine), default=None)})
        return rows

    def profile_of(self, app: str) -> dict[str, Any]:
        profile = self.profiles.get(app)
        version = ""
        with contextlib.suppress(Error):
            version = store.current(self.board, app).version
        return profile.to_dict(version) if profile else {"app": app, "version": version,
                                                          "interfaces": [], "egress": [],
                                                          "denied": []}

    def _save_profiles(self) -> None:
        for app in list(self.profiles):
            with contextlib.suppress(OSError, Error):
                write_atomic(store.apps_dir(self.board) / app / "profile.json",
                             json.dumps(self.profile_of(app)).encode(), mode=0o600)

    def _send_profiles(self, client: ApiClient) -> None:
        """What complain mode learnt, for the apps still installed and complaining."""
        installed = set(store.installed(self.board))
        for app in list(self.profiles):
            if app not in installed:
                self.profiles.pop(app, None)  # removed: nothing more to learn
                continue
            try:
                client.call("POST", "/v1/gateway/profiles", self.profile_of(app))
            except InputError as e:
                self.say(f"the fleet server refused {app}'s profile: {e.message}")
        self._save_profiles()

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._send()
            except Exception:  # the reports must outlive any one failure (a full disk...)
                log.exception("sending app reports failed; trying again")
                self._stop.wait(5.0)

    def _send(self) -> None:
        client: ApiClient | None = None
        failures = 0
        next_profile = 0.0
        batch: list[SecurityEvent] = []
        while not self._stop.is_set():
            self.outbox.ready.wait(1.0)
            self.outbox.flush_suppressed()
            try:
                client = client or self.client()
                batch = self.outbox.take()
                if batch:
                    client.call("POST", "/v1/gateway/events",
                                {"batch": self.outbox.batch_id,
                                 "events": [e.to_dict() for e in batch]})
                    self.outbox.sent(batch)
                    batch = []
                if self._status_dirty.is_set():
                    self._status_dirty.clear()
                    client.call("POST", "/v1/gateway/apps", {"apps": self.statuses()})
                if self.profiles and time.monotonic() >= next_profile:
                    next_profile = time.monotonic() + PROFILE_EVERY
                    self._send_profiles(client)
                failures = 0
            except Unreachable as e:
                failures += 1
                self.outbox.save()
                self._status_dirty.set()
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                log.info("events not delivered: %s", e.message)
            except InputError as e:  # refused as malformed: retrying cannot help
                self.say(f"the fleet server refused app reports: {e.message}")
                if batch:
                    self.outbox.sent(batch)
                    self.outbox.add(SecurityEvent(time.time(), "", "sandbox",
                                                  f"{len(batch)} events refused by the "
                                                  f"fleet server: {e.message}"))
                self._stop.wait(1.0)
            except Error as e:  # refused otherwise (revoked?): keep them, try later
                self.say(f"the fleet server refused app reports: {e.message}")
                self._stop.wait(5.0)
        if client is not None:
            client.close()
