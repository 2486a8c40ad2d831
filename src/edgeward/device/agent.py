"""The gateway agent, first version: enrol, attest, heartbeat, and keep at it.

It runs after a verified boot (it needs the identity key that only such a boot
opens), talks to the fleet server over mutual TLS with the factory
certificate, and while the server is away retries with exponential backoff
and full jitter. SIGTERM (or SIGINT) stops it between two steps.
"""

from __future__ import annotations

import contextlib
import random
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from edgeward.api_client import ApiClient, tls_context
from edgeward.board.base import Board
from edgeward.device import attest, identity, keyring, orders
from edgeward.device.apps.reconcile import AppOutcome, reconcile
from edgeward.device.apps.runtime import SYSTEM_BUS, AppRuntime
from edgeward.device.boot.chain import boot as boot_chain
from edgeward.device.boot.chain import last_boot
from edgeward.device.secrets import exchange
from edgeward.device.telemetry.monitor import Monitoring, MonitorSettings
from edgeward.device.updates.client import TufClient
from edgeward.device.updates.updater import OsUpdater, Outcome
from edgeward.errors import AttestationError, Error, InputError, StateError, Unreachable
from edgeward.files import read_file, write_atomic

SERVER_CA = "server-ca.pem"


@dataclass
class AgentSettings:
    server: str
    interval: float = 30.0
    attest_every: float = 12 * 3600.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    once: bool = False
    update_every: float = 900.0  # seconds between update checks (0: never)
    health_tries: int = 5  # attempts to reach the server after a trial boot
    apps: bool = True  # run the installed apps (supervisor, denial reports)
    system_bus: str = SYSTEM_BUS  # the D-Bus the apps' proxies filter
    telemetry_every: float = 30.0  # seconds between telemetry reports (0: no monitoring)
    audit_every: float = 86400.0  # seconds between hardening audits (0: never)
    auth_log: Path | None = None  # the system's authentication log (failed logins)


@dataclass
class AgentState:
    enrolled: bool = False
    attestation: str = "unknown"
    heartbeats: int = 0
    failures: int = 0
    last_error: str = ""
    log: list[str] = field(default_factory=list)
    updates: list[dict[str, str]] = field(default_factory=list)


def verified_boot(board: Board) -> dict[str, Any]:
    """This power cycle's boot, if it verified (the agent runs after one, and only then
    is the data area open)."""
    boot = last_boot(board)
    if boot is None or boot["verdict"] != "booted":
        raise StateError("the agent runs after a verified boot: boot the device first")
    return boot


def server_ca_path(board: Board) -> Path:
    return board.data_dir / "server" / SERVER_CA


def remember_server_ca(board: Board, ca: Path) -> None:
    write_atomic(server_ca_path(board), read_file(ca, "server CA certificate"))


def backoff(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS's recommendation)."""
    return rng.uniform(0, min(cap, base * 2 ** min(failures, 30)))


class Agent:
    def __init__(self, board: Board, settings: AgentSettings,
                 say: Callable[[str], None] = lambda _: None,
                 rng: random.Random | None = None) -> None:
        self.board, self.settings, self.say = board, settings, say
        self.state = AgentState()
        self.stop = threading.Event()
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self.boot = verified_boot(board)
        self.apps: AppRuntime | None = None
        self.monitoring: Monitoring | None = None
        self.secrets_stamp: object = None  # what the server last said of this gateway's
        if not server_ca_path(board).exists():
            raise InputError("no server CA known: pass --server-ca the first time")

    def _context(self) -> ssl.SSLContext:
        key_file = keyring.opened_file(self.board, keyring.IDENTITY)  # in RAM, never on disk
        if key_file is None:
            raise AttestationError("the identity key is sealed: boot the device first")
        return tls_context(str(server_ca_path(self.board)),
                           str(identity.cert_path(self.board)), str(key_file))

    def _client(self) -> ApiClient:
        return ApiClient(self.settings.server, self._context())

    def updater(self) -> OsUpdater:
        return OsUpdater(
            self.board, self.settings.server, self._client,
            lambda slot: TufClient(self.board, self.settings.server, self._context(), slot),
            self.reboot, self.health, self.say)

    def reboot(self) -> None:
        """Power-cycle the virtual gateway; the watchdog resets a boot that halts, until
        one comes up (BL2 falls back to the committed slot within its boot limit). The
        apps stop with the old system and start again on the new one."""
        running = self.apps is not None
        self.stop_apps()
        try:
            self._power_cycle()
        finally:
            if running:
                self.start_apps()

    def _power_cycle(self) -> None:
        env = self.board.read_env()
        for _ in range((env.boot_limit if env else 3) + 2):
            report = boot_chain(self.board)
            if report.verdict == "booted":
                break
            self.say(f"boot refused at {report.refused_stage}: {report.reason}; watchdog reset")
        booted = last_boot(self.board)
        if booted is None or booted["verdict"] != "booted":
            raise StateError("the gateway does not boot on either slot")
        self.boot = booted
        self.say(f"rebooted into slot {booted['slot']} "
                 f"({dict(booted.get('versions', {})).get('rootfs', '?')})")

    def health(self) -> str | None:
        """After a trial boot: verified boot, attested, reaching the server.

        A server that does not answer is asked again (``health_tries``, with backoff)
        before the release is judged: a network blip is not a bad release."""
        if self.boot.get("verdict") != "booted":
            return "the boot was not verified"
        for attempt in range(1, self.settings.health_tries + 1):
            try:
                with self._client() as client:
                    verdict = self.attest(client)
                    if verdict != "attested":
                        return f"attestation {verdict}"
                    self.heartbeat(client)
                # apps are not asked: the OS's security stream must not wait on them, and
                # an app that crashes on a new release would otherwise veto every update
                # (their crash loops are reported as ever)
                return None
            except Unreachable as e:
                if attempt == self.settings.health_tries:
                    return f"fleet server not reached ({attempt} tries): {e.message}"
                self.stop.wait(backoff(attempt, self.settings.backoff_base,
                                       self.settings.backoff_cap, self.rng))
            except Error as e:
                return f"fleet server refused the gateway: {e.message}"
        return None

    def finish_boot(self) -> None:
        """Commit or roll back what the last boot tried; a failure is said, not fatal."""
        try:
            done = self.updater().after_boot()
        except Unreachable:
            raise
        except Error as e:
            done = Outcome("failed", "", e.message)
            self.say(f"finishing the last update failed: {e.message}")
        if done.action != "none":
            self.state.updates.append(done.to_dict())

    def check_apps(self) -> list[AppOutcome]:
        """Run what the group is assigned: install, switch or remove apps (TUF)."""
        with self._client() as client:
            wanted = client.call("GET", "/v1/gateway/desired").get("apps", [])
        slot = str(self.boot.get("slot", "a"))
        done = reconcile(self.board, wanted, lambda: TufClient(
            self.board, self.settings.server, self._context(), slot),
            self.apps.forget if self.apps is not None else lambda _: None)
        for outcome in done:
            if outcome.action != "kept" or outcome.detail:
                self.say(f"app {outcome.app}: {outcome.action} {outcome.version} "
                         f"{outcome.detail}".strip())
        if self.apps is not None:
            self.apps.reconciled({o.app for o in done if o.action in ("installed", "changed")})
        return done

    def start_apps(self) -> None:
        """Run the installed apps (after a verified boot, once the server knows us): the
        supervisor, the denial monitor, the reports to the server."""
        if self.apps is not None or not self.settings.apps:
            return
        runtime = AppRuntime(self.board, self._client, self.say, self.settings.system_bus)
        try:
            runtime.start()
        except Exception as e:  # the agent's other duties go on without the apps
            self.say(f"apps not started: {e.message if isinstance(e, Error) else e!r}")
            with contextlib.suppress(Exception):
                runtime.close()
            return
        self.apps = runtime

    def start_monitoring(self) -> None:
        """Telemetry, security events, logs and the hardening audit (a thread of its own);
        the agent's own lines are shipped from now on."""
        if self.monitoring is not None or not self.settings.telemetry_every:
            return
        monitoring = Monitoring(self.board, self._client, str(self.boot["boot_id"]),
                                MonitorSettings(self.settings.telemetry_every,
                                                audit_every=self.settings.audit_every,
                                                auth_log=self.settings.auth_log),
                                self.say)
        try:
            monitoring.start()
        except Exception as e:  # the agent's other duties go on without it
            self.say(f"monitoring not started: {e.message if isinstance(e, Error) else e!r}")
            return
        self.monitoring = monitoring
        say = self.say

        def shipped(text: str) -> None:
            say(text)
            monitoring.agent_line(text)

        self.say = shipped

    def stop_monitoring(self) -> None:
        if self.monitoring is not None:
            self.monitoring.close()
            self.monitoring = None

    def follow_orders(self, client: ApiClient) -> None:
        """Carry out what operators ordered (stop an app, cut its network, quarantine,
        audit now)."""
        try:
            orders.follow(self.board, self.apps, client, self.say,
                          self.monitoring.audit if self.monitoring is not None else None)
        except Unreachable:
            raise
        except Error as e:  # an order the server cannot give now waits for the next beat
            self.say(f"orders: {e.message}")

    def stop_apps(self) -> None:
        if self.apps is not None:
            self.apps.close()
            self.apps = None

    def check_updates(self, force: bool = False) -> Outcome:
        try:
            outcome = self.updater().check(force)
        except Unreachable:
            raise
        except Error as e:  # a failed check is reported, the agent goes on
            outcome = Outcome("failed", "", e.message)
            self.say(f"update check failed: {e.message}")
        if outcome.action != "none":
            self.state.updates.append(outcome.to_dict())
        return outcome

    def enrol(self, client: ApiClient) -> None:
        client.call("POST", "/v1/gateway/enrol", {
            "record": identity.record_path(self.board).read_text(),
            "station_certificate": read_file(identity.station_path(self.board),
                                             "station certificate").decode()})
        self.state.enrolled = True
        self.say("enrolled")

    def attest(self, client: ApiClient) -> str:
        nonce = client.call("POST", "/v1/gateway/nonce")["nonce"]
        _, quote = attest.quote(self.board, bytes.fromhex(nonce))
        answer = client.call("POST", "/v1/gateway/quote",
                             {"nonce": nonce, "quote": quote.decode()})
        self.state.attestation = str(answer["verdict"])
        self.say(f"attestation {answer['verdict']}"
                 + (f": {answer['reason']}" if answer.get("reason") else ""))
        return self.state.attestation

    def secrets(self, client: ApiClient, stamp: object = None) -> None:
        """Escrow the recovery key (once); while attested, take the secrets delivered and
        report the credentials made here. An app whose secrets changed restarts to read
        them. ``stamp``: the heartbeat's word for the gateway's secrets (a new one is a
        rotation or a revocation, taken at once; none yet: taken with the attestation)."""
        if stamp is not None and stamp == self.secrets_stamp:
            return
        try:
            if exchange.escrow(self.board, client):
                self.say("recovery key escrowed to the fleet server")
            if self.state.attestation != "attested":
                return
            done = exchange.exchange(self.board, client, self.say)
        except Unreachable:
            raise
        except Error as e:
            self.say(f"secrets: {e.message}")
            return
        if stamp is not None:
            self.secrets_stamp = stamp  # taken: nothing more until it changes
        if done.apps and self.apps is not None:
            self.apps.supervisor.restart(done.apps)

    def heartbeat(self, client: ApiClient) -> dict[str, Any]:
        answer: dict[str, Any] = client.call("POST", "/v1/gateway/heartbeat", {
            "slot": self.boot["slot"], "boot_id": self.boot["boot_id"],
            "versions": {k: v for k, v in self.boot.get("versions", {}).items()
                         if k in ("bl2", "kernel", "rootfs")}})
        self.state.heartbeats += 1
        return answer

    def run(self) -> AgentState:
        """Until stopped (or once): enrol, attest, then heartbeats; back off on failure."""
        next_attest = 0.0
        next_update = 0.0
        clock = 0.0
        finished_boot = False
        if not self.settings.once:
            self.start_apps()  # after the verified boot, whether or not the server answers
            self.start_monitoring()
        try:
            self._loop(finished_boot, next_attest, next_update, clock)
        finally:
            self.stop_monitoring()
            self.stop_apps()
        return self.state

    def _loop(self, finished_boot: bool, next_attest: float, next_update: float,
              clock: float) -> None:
        with self._client() as client:
            while not self.stop.is_set():
                try:
                    if not self.state.enrolled:
                        self.enrol(client)
                    if not finished_boot:  # a trial boot is committed or rolled back first
                        finished_boot = True
                        self.finish_boot()
                    if clock >= next_attest:
                        self.attest(client)
                        self.secrets(client)
                        next_attest = clock + self.settings.attest_every
                    self.secrets(client, self.heartbeat(client).get("secrets"))
                    self.follow_orders(client)
                    if self.settings.update_every and clock >= next_update:
                        next_update = clock + self.settings.update_every
                        self.check_updates()
                        self.check_apps()  # apps never wait on the OS stream, nor it on them
                        self.secrets(client)
                    self.state.failures, self.state.last_error = 0, ""
                    if self.settings.once:
                        break
                    wait = self.settings.interval
                except Unreachable as e:
                    self.state.failures += 1
                    self.state.last_error = e.message
                    wait = backoff(self.state.failures, self.settings.backoff_base,
                                   self.settings.backoff_cap, self.rng)
                    self.say(f"{e.message}; retrying in {wait:.1f} s")
                    if self.settings.once and self.state.failures > 5:
                        raise
                self.stop.wait(wait)
                clock += wait

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            self.say(f"signal {signum}: stopping")
            self.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
