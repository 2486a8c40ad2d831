"""Starting the fleet server: data directory, database, TLS identity, uvicorn.

``DATA/`` holds ``fleet.db`` (the embedded SQLite default), ``tls/`` (the
server's certificate, made on first start), ``manufacturers/*.pem`` (the
manufacturer CAs whose gateways it accepts), ``known-good/*.json`` and, after
the first start, ``admin-token``: the platform admin's first API token (0600),
written once and never logged.

The master key that encrypts every secret at rest comes from ``--master-key FILE``
(0600) or ``EDGEWARD_MASTER_KEY`` (hex); given neither, the first start makes
``DATA/master.key`` (0600) and later starts use it. Operators should move that file
off the data disk (to a secrets manager, a separate volume, a TPM-sealed blob) and
pass it with ``--master-key``: a copy of the data directory or a database dump then
holds no secret in a form anyone can read. A wrong key stops the start with one line.
See :mod:`edgeward.server.masterkey`.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import uvicorn
from sqlalchemy import select

from edgeward.errors import InputError, ToolError
from edgeward.files import private_dir, read_file, write_atomic, write_secret
from edgeward.server import identity, masterkey
from edgeward.server.app import JsonFormatter, create_app
from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.db.models import Tenant
from edgeward.server.services import hookreach, tenants, tokens
from edgeward.server.services.authz import PLATFORM_TENANT, Role
from edgeward.server.services.hookworker import HookWorker
from edgeward.server.services.registry import Trust
from edgeward.server.services.repository import ServerRepository
from edgeward.server.services.retention import keep_tidy
from edgeward.server.state import ServerState
from edgeward.server.tls import TLSExtensionProtocol
from edgeward.trust import certs
from edgeward.trust.digest import sha384_hex
from edgeward.trust.quote import KnownGood

# Idle keep-alive connections are kept well past the agent's 30 s heartbeat: a check-in
# on an open connection costs a fraction of a new mutual-TLS handshake.
KEEP_ALIVE_S = 125
# How long a stopping server waits for its connections to close. A gateway that holds
# one open without reading (mid-reboot, say) would otherwise hold the stop for as long
# as the TLS close takes (asyncio's 30 s), past Running's join.
GRACEFUL_STOP_S = 5


@dataclass(frozen=True)
class Settings:
    data: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8443
    trust_cas: tuple[Path, ...] = ()
    known_good: tuple[Path, ...] = ()
    names: tuple[str, ...] = ()  # DNS names / addresses gateways use to reach the server
    master_key: Path | None = None  # else EDGEWARD_MASTER_KEY, else DATA/master.key
    hook_networks: tuple[str, ...] = ()  # CIDRs alert hooks may reach besides the internet


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:8443")
    return host.strip("[]"), int(port)


def _collect(folder: Path, given: tuple[Path, ...], suffix: str) -> list[Path]:
    """Keep each given file in ``folder`` under its SHA-384 (so every factory's
    ``ca.pem`` and every release's ``known-good.json`` stays), and list them all."""
    private_dir(folder)
    for path in given:
        data = read_file(path, "file")
        write_atomic(folder / f"{sha384_hex(data)[:32]}{suffix}", data)
    return sorted(folder.glob(f"*{suffix}"))


def _bootstrap_admin(db: Database, data: Path, now: dt.datetime) -> None:
    with db.transaction() as session:
        if session.execute(select(Tenant).limit(1)).first():
            return
        platform = tenants.create_tenant(session, PLATFORM_TENANT, now)
        admin = tenants.create_user(session, platform.id, "admin", Role.ADMIN, now)
        write_secret(data / "admin-token", tokens.issue(session, admin.id, now).encode())
    logging.getLogger("edgeward.server").warning(
        "first start: platform admin token written", extra={"fields": {
            "path": str(data / "admin-token")}})


def prepare(settings: Settings, now: dt.datetime) -> tuple[ServerState, uvicorn.Config]:
    hook_networks = hookreach.networks(settings.hook_networks)  # refused before anything
    data = private_dir(settings.data)
    db = Database(settings.db_url or f"sqlite:///{data / 'fleet.db'}")
    try:
        migrate.upgrade(db)
        master = masterkey.unlock(db, settings.master_key, data, now)
    except BaseException:
        db.close()
        raise
    _bootstrap_admin(db, data, now)
    ca_files = _collect(data / "manufacturers", settings.trust_cas, ".pem")
    cas = tuple(certs.load_cert(read_file(p, "CA certificate"), str(p)) for p in ca_files)
    known = KnownGood()
    for path in _collect(data / "known-good", settings.known_good, ".json"):
        known = known.merged(KnownGood.from_json(read_file(path, "known-good file")))
    listen = [] if settings.host in ("0.0.0.0", "::") else [settings.host]  # noqa: S104
    names = list(dict.fromkeys([*settings.names, *listen, "localhost", "127.0.0.1"]))
    tls = identity.ensure(data, names, now)
    bundle = data / "tls" / "client-cas.pem"
    write_atomic(bundle, b"".join(certs.cert_pem(ca) for ca in cas))
    state = ServerState(db, Trust(cas), known, master_key=master,
                        hook_networks=hook_networks)
    repo = state.repository = ServerRepository(data / "tuf", lambda: state.clock())
    state.known_good = known.merged(repo.known_good())
    config = uvicorn.Config(
        create_app(state), host=settings.host, port=settings.port, http=TLSExtensionProtocol,
        ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key),
        ssl_ca_certs=str(bundle) if cas else None,
        ssl_cert_reqs=ssl.CERT_OPTIONAL if cas else ssl.CERT_NONE,
        log_config=None, access_log=False, lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_S, timeout_graceful_shutdown=GRACEFUL_STOP_S,
    )
    return state, config


def configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("edgeward")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


REFRESH_EVERY_S = 60.0


def keep_fresh(state: ServerState, stop: threading.Event) -> threading.Thread:
    """Re-sign the TUF timestamp (and snapshot) before they expire, until ``stop``."""
    def loop() -> None:
        log = logging.getLogger("edgeward.server")
        while not stop.wait(REFRESH_EVERY_S):
            try:
                if state.repository is not None and state.repository.refresh_timestamp():
                    log.info("timestamp re-signed")
            except Exception:  # keep refreshing: the next round may succeed
                log.exception("timestamp refresh failed")

    thread = threading.Thread(target=loop, name="tuf-timestamp", daemon=True)
    thread.start()
    return thread


class Running:
    """A server on a background thread (tests, the demo, benchmarks)."""

    def __init__(self, settings: Settings, now: dt.datetime) -> None:
        self.state, config = prepare(settings, now)
        self.server = uvicorn.Server(config)
        self.settings = settings
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.hooks = HookWorker(self.state.db, self.state.master_key,
                                lambda: self.state.clock(), self.state.hook_networks)

    @property
    def url(self) -> str:
        return f"https://{self.settings.host}:{self.settings.port}"

    def __enter__(self) -> Running:
        self.thread.start()
        keep_fresh(self.state, self._stop)
        keep_tidy(self.state.db, self.state.clock, self._stop)
        self.hooks.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ToolError(f"the fleet server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.hooks.stop()
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.state.db.close()


def run(settings: Settings, now: dt.datetime) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly and return (exit 0)."""
    configure_logging()
    state, config = prepare(settings, now)
    keep_fresh(state, threading.Event())
    keep_tidy(state.db, state.clock, threading.Event())
    hooks = HookWorker(state.db, state.master_key, lambda: state.clock(),
                       state.hook_networks).start()
    # uvicorn re-raises the stop signal after its graceful shutdown; with these handlers
    # in place that lands here as a no-op instead of killing the process mid-exit.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    try:
        uvicorn.Server(config).run()
    finally:
        hooks.stop()


def _stopped(signum: int, _frame: FrameType | None) -> None:
    logging.getLogger("edgeward.server").info(
        "stopped", extra={"fields": {"signal": signal.Signals(signum).name}})



