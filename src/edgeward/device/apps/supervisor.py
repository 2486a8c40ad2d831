"""Running the apps' daemons: started after boot, restarted with backoff, stopped when they
crash in a loop, their limits watched.

Each daemon is a :class:`Unit` with a state: ``starting`` -> ``running``; on exit,
by its restart policy (``on-failure``, ``always``, ``never``) either ``backoff``
(restarted after a delay that doubles, up to a cap) or ``stopped`` / ``failed``;
``crash-loop`` when it failed too often within a window (it is then left stopped,
and that is reported). An operator's stop is remembered across agent restarts.
Every tick also reads each app's cgroup limit events (:mod:`limits`) and reports
new ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgeward.board.base import Board
from edgeward.device.apps import cgroups, launch, reconcile, runner, sandbox, store
from edgeward.device.apps.limits import LimitWatch
from edgeward.device.apps.logsink import LogSink
from edgeward.device.events import SecurityEvent
from edgeward.errors import Error, NotAvailable, NotFound
from edgeward.files import write_atomic

log = logging.getLogger("edgeward.agent")
STATE = "supervisor.json"
STOPPED = "stopped"  # marker beside an app: an operator stopped it


@dataclass
class Settings:
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    crash_limit: int = 5  # failures within crash_window make a crash loop
    crash_window: float = 60.0
    stable: float = 30.0  # up this long, its failures are forgotten
    stop_timeout: float = 5.0
    tick: float = 0.25


class Bus(Protocol):
    @property
    def alive(self) -> bool: ...

    def stop(self) -> None: ...


@dataclass
class Unit:
    app: str
    daemon: str
    restart: str
    state: str = "stopped"
    process: subprocess.Popen[bytes] | None = None
    since: float = 0.0  # wall clock of the last state change
    started: float = 0.0  # monotonic, of the last start
    restarts: int = 0
    failures: deque[float] = field(default_factory=deque)
    next_start: float = 0.0
    last_exit: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "daemon": self.daemon, "state": self.state,
                "pid": self.process.pid if self.process else None, "since": self.since,
                "restarts": self.restarts, "last_exit": self.last_exit, "detail": self.detail}


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Supervisor:
    def __init__(self, board: Board, report: Callable[[SecurityEvent], object],
                 watch: Callable[[int, str, bool], None] = lambda *_: None,
                 bus: Callable[[sandbox.Plan, sandbox.AppUser, Path], Bus] | None = None,
                 changed: Callable[[], None] = lambda: None,
                 settings: Settings | None = None) -> None:
        self.board, self.report, self.watch, self.bus = board, report, watch, bus
        self.changed = changed
        self.settings = settings or Settings()
        self.units: dict[tuple[str, str], Unit] = {}
        self.buses: dict[str, Bus] = {}
        self.limits = LimitWatch()
        self.lock = threading.RLock()
        self.logs = LogSink()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start every installed app's daemons (but those an operator stopped), then
        keep them running from a thread of its own."""
        self.sync()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self.lock:
            for unit in list(self.units.values()):
                self._halt(unit, "stopped", "the agent stopped")
            for app in list(self.buses):
                self._drop_bus(app)
        self.logs.close()
        self._save()

    def sync(self) -> None:
        """Match the units to what is installed: new daemons start, removed ones stop, an
        app whose revision changed restarts."""
        with self.lock:
            wanted: dict[tuple[str, str], str] = {}
            for name in store.installed(self.board):
                try:
                    app = store.current(self.board, name)
                except Error:
                    continue
                for program in app.manifest.programs:
                    if program.daemon:
                        wanted[(name, program.name)] = program.restart
            for key, unit in list(self.units.items()):
                if key not in wanted:
                    self._halt(unit, "stopped", "removed")
                    del self.units[key]
            for key, restart in wanted.items():
                unit = self.units.setdefault(key, Unit(key[0], key[1], restart))
                unit.restart = restart
                if unit.state == "stopped" and not self._operator_stopped(key[0]):
                    self._launch(unit)
        self._save()

    def forget(self, app: str) -> None:
        """Before the app is removed: its daemons stopped, its proxy and cgroup gone."""
        with self.lock:
            for key in [k for k in self.units if k[0] == app]:
                self._halt(self.units.pop(key), "stopped", "removed")
            self._drop_bus(app)
            self.limits.forget(app)
            group = cgroups.existing(app)
            cgroups.kill(group)
            cgroups.remove(group, wait=5.0)
        self._save()

    def restart(self, apps: set[str]) -> None:
        """Restart these apps' daemons (a new revision, other grants, another mode)."""
        with self.lock:
            for unit in self.units.values():
                if unit.app in apps and unit.state != "stopped":
                    self._halt(unit, "stopped", "restarting: its revision or grants changed")
            for app in apps:
                self._drop_bus(app)
        self.sync()

    # --- operator actions -----------------------------------------------------------
    def start_app(self, app: str, daemon: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            units = self._units(app, daemon)
            (store.apps_dir(self.board) / app / STOPPED).unlink(missing_ok=True)
            for unit in units:
                if unit.state not in ("running", "starting"):
                    unit.failures.clear()
                    self._launch(unit)
            self._save()
            return [u.to_dict() for u in units]

    def stop_app(self, app: str, daemon: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            units = self._units(app, daemon)
            if daemon is None:
                write_atomic(store.apps_dir(self.board) / app / STOPPED, b"", mode=0o600)
            for unit in units:
                self._halt(unit, "stopped", "stopped by the operator")
            if daemon is None:
                self._drop_bus(app)
            self._save()
            return [u.to_dict() for u in units]

    def bus_pids(self) -> set[int]:
        """The D-Bus proxies' processes (they run as their apps' users, outside them)."""
        found = set()
        for bus in list(self.buses.values()):
            process = getattr(bus, "process", None)
            if process is not None:
                found.add(int(process.pid))
        return found

    def status(self, app: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [u.to_dict() for u in self.units.values() if app in (None, u.app)]

    def _units(self, app: str, daemon: str | None) -> list[Unit]:
        units = [u for u in self.units.values()
                 if u.app == app and daemon in (None, u.daemon)]
        if not units:
            raise NotFound(f"{app} has no daemon {daemon}" if daemon else
                           f"{app} is not installed or has no daemons")
        return units

    def _operator_stopped(self, app: str) -> bool:
        return (store.apps_dir(self.board) / app / STOPPED).exists()

    # --- starting and stopping ------------------------------------------------------
    def _launch(self, unit: Unit) -> None:
        self._set(unit, "starting")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            mode = reconcile.mode(self.board, unit.app)
            plan, user = runner.plan(self.board, unit.app, unit.daemon, [],
                                     complain=mode == "complain")
            if plan.needs_bus and self.bus is not None:
                if unit.app in self.buses and not self.buses[unit.app].alive:
                    self._drop_bus(unit.app)  # it died: a new one, or the app has no bus
                if unit.app not in self.buses:
                    try:
                        self.buses[unit.app] = self.bus(plan, user,
                                                        self._bus_socket(unit.app))
                    except NotAvailable as e:  # no system bus here: it runs without one
                        self.report(SecurityEvent(time.time(), unit.app, "sandbox",
                                                  f"runs without D-Bus: {e.message}", {}))
                if unit.app in self.buses:
                    plan = dataclasses.replace(plan, bus_socket=self._bus_socket(unit.app))
            self.watch(user.uid, unit.app, plan.complain)
            started = launch.start(plan, user, out_w, err_w)
        except Exception as e:  # whatever it was, the unit fails and the agent goes on
            os.close(out_r)
            os.close(err_r)
            message = e.message if isinstance(e, Error) else f"{type(e).__name__}: {e}"
            if not isinstance(e, Error):
                log.exception("starting %s/%s failed", unit.app, unit.daemon)
            self._failed(unit, f"could not start: {message}", sandbox_error=True)
            return
        finally:
            os.close(out_w)
            os.close(err_w)
        folder = store.apps_dir(self.board) / unit.app / "logs"
        self.logs.attach(out_r, folder / f"{unit.daemon}.log", "out")
        self.logs.attach(err_r, folder / f"{unit.daemon}.log", "err")
        unit.process = started.process
        unit.started = time.monotonic()
        unit.detail = ""
        self._set(unit, "running")

    def _bus_socket(self, app: str) -> Path:
        return store.apps_dir(self.board) / app / "run" / "bus"

    def _drop_bus(self, app: str) -> None:
        bus = self.buses.pop(app, None)
        if bus is not None:
            with contextlib.suppress(Exception):
                bus.stop()

    def _halt(self, unit: Unit, state: str, detail: str) -> None:
        process = unit.process
        unit.process = None
        if process is not None and process.poll() is None:
            tree = _children(process.pid)
            apps = [p for p in tree if not _is_sandbox(p)] or tree
            for pid in apps:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
            try:
                process.wait(self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()  # bubblewrap's children die with it
                process.wait()
        unit.detail = detail
        self._set(unit, state)

    # --- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.settings.tick):
            try:
                self.tick()
            except Exception:  # the supervisor must outlive a bad tick
                log.exception("supervisor tick failed")

    def tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            for unit in list(self.units.values()):
                if unit.state == "running" and unit.process is not None:
                    code = unit.process.poll()
                    if code is not None:
                        self._exited(unit, code)
                    elif now - unit.started >= self.settings.stable:
                        unit.failures.clear()
                elif unit.state == "backoff" and now >= unit.next_start:
                    unit.restarts += 1
                    self._launch(unit)
            self._check_limits()
            dead = {app for app, bus in self.buses.items() if not bus.alive}
        for app in dead:  # its sandbox holds the dead socket: the app restarts with a new one
            self.report(SecurityEvent(time.time(), app, "sandbox",
                                      "its D-Bus proxy stopped: restarting the app", {}))
            self.restart({app})

    def _exited(self, unit: Unit, code: int) -> None:
        unit.process = None
        unit.last_exit = code
        failed = code != 0
        if not failed and unit.restart != "always":
            unit.detail = "exited"
            self._set(unit, "stopped")
            return
        if unit.restart == "never":
            unit.detail = f"exited with {code}"
            self._set(unit, "failed")
            return
        reason = f"exited with {code}" if code >= 0 else f"killed by signal {-code}"
        self._failed(unit, reason)

    def _failed(self, unit: Unit, reason: str, sandbox_error: bool = False) -> None:
        now = time.monotonic()
        unit.failures.append(now)
        while unit.failures and now - unit.failures[0] > self.settings.crash_window:
            unit.failures.popleft()
        unit.detail = reason
        if sandbox_error:
            self.report(SecurityEvent(time.time(), unit.app, "sandbox",
                                      f"{unit.daemon}: {reason}", {"daemon": unit.daemon}))
        if len(unit.failures) >= self.settings.crash_limit:
            self._set(unit, "crash-loop")
            self.report(SecurityEvent(
                time.time(), unit.app, "crash-loop",
                f"{unit.daemon} crashed {len(unit.failures)} times in "
                f"{self.settings.crash_window:.0f} s ({reason}): stopped",
                {"daemon": unit.daemon, "restarts": unit.restarts, "last": reason}))
            return
        delay = min(self.settings.backoff_cap,
                    self.settings.backoff_base * 2 ** (len(unit.failures) - 1))
        unit.next_start = now + delay
        self._set(unit, "backoff")

    def _check_limits(self) -> None:
        for app in {u.app for u in self.units.values()}:
            for event in self.limits.check(app):
                self.report(event)

    def _set(self, unit: Unit, state: str) -> None:
        if unit.state != state:
            unit.state, unit.since = state, time.time()
            self._save()
            self.changed()

    def _save(self) -> None:
        with contextlib.suppress(OSError):
            write_atomic(store.state_dir(self.board) / STATE,
                         json.dumps(self.status()).encode(), mode=0o600)


def _is_sandbox(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/exe").endswith("/bwrap")
    return False


def saved_status(board: Board) -> list[dict[str, Any]]:
    """What the supervisor last wrote (for the CLI, with or without a running agent)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((store.state_dir(board) / STATE).read_text())
        if isinstance(data, list):
            return data
    return []

