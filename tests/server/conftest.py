"""Server fixtures: every test that takes ``database_url`` runs on SQLite and on PostgreSQL.

The PostgreSQL side is a real, throwaway cluster that this module makes with
``initdb`` and starts with ``postgres`` once per session: trust authentication,
listening only on 127.0.0.1 on a free port, its unix socket inside its own temp
dir, durability off for speed. Each test gets a fresh database in it, dropped
afterwards. The cluster is stopped and its directory removed at session end.

PostgreSQL refuses to run as root, so under root the server binaries run as the
``postgres`` system user (made by Debian's ``postgresql`` package, which
scripts/bootstrap installs) and the temp dir is handed to that user.

Missing binaries skip the PostgreSQL half, or fail it under
``EDGEWARD_REQUIRE_REAL=1``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import psycopg
import pytest
from psycopg import sql

from edgeward.board.virtual import VirtualBoard
from edgeward.device.boot.chain import boot
from edgeward.factory.provision import provision
from edgeward.factory.station import Factory, open_factory
from edgeward.server.db import migrate
from edgeward.server.db.engine import Database
from edgeward.server.runner import Running, Settings
from tests.conftest import NOW, REQUIRE_REAL
from tests.server.harness import Fleet, free_port

PG_USER = "postgres"  # the cluster's superuser, and the OS user under root
HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for the server to accept connections
STOP_TIMEOUT = 15.0  # seconds for a fast shutdown before SIGKILL
PORT_ATTEMPTS = 3  # another process may grab the free port before postgres binds it


@dataclass(frozen=True)
class PostgresCluster:
    """A running throwaway cluster; connect as ``user`` over TCP, no password."""

    bindir: Path
    datadir: Path
    host: str
    port: int
    user: str
    templates: set[str] = field(default_factory=set)  # databases made to be copied

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL for ``dbname`` in this cluster (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit psycopg connection, for admin statements like CREATE DATABASE."""
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               dbname=dbname, autocommit=True, connect_timeout=5)


def _missing(message: str) -> NoReturn:
    """Skip, or fail under EDGEWARD_REQUIRE_REAL=1 (as tests.conftest.require_tool does)."""
    if REQUIRE_REAL:
        pytest.fail(message + " and EDGEWARD_REQUIRE_REAL=1")
    pytest.skip(message)


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name  # /usr/lib/postgresql/<version>/bin
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


def _find_bindir() -> Path | None:
    """``pg_config --bindir`` if it has the server binaries, else the newest Debian install."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                    check=True, timeout=10)
            candidates.append(result.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        bindir = Path(candidate)
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres")):
            return bindir
    return None


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to the postgres user; none when not root."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(PG_USER)
    except KeyError:
        pytest.fail(f"running as root, and PostgreSQL refuses to run as root, but there is no "
                    f"'{PG_USER}' system user to run it as (install the Debian 'postgresql' "
                    f"package via scripts/bootstrap, or run the tests as a normal user)")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT to the postmaster), SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _start(bindir: Path, datadir: Path, sockdir: Path, log: Path,
           run_as: dict[str, Any]) -> tuple[subprocess.Popen[bytes], PostgresCluster]:
    """Start postgres on a free port and wait until it takes connections."""
    for _attempt in range(PORT_ATTEMPTS):
        port = _free_port()
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port),
                 "-k", str(sockdir),
                 "-c", f"listen_addresses={HOST}",
                 "-c", "fsync=off",
                 "-c", "full_page_writes=off",
                 "-c", "synchronous_commit=off"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=datadir.parent, **run_as)
        cluster = PostgresCluster(bindir, datadir, HOST, port, PG_USER)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                cluster.connect().close()
            except psycopg.OperationalError:
                time.sleep(0.05)
            else:
                return proc, cluster
        if proc.poll() is None:  # timed out while running
            _stop(proc)
            pytest.fail(f"postgres did not accept connections within {START_TIMEOUT}s:\n"
                        + log.read_text(errors="replace"))
        # exited early: most likely the port was taken in the meantime; try another one
    pytest.fail(f"postgres failed to start {PORT_ATTEMPTS} times:\n"
                + log.read_text(errors="replace"))


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the whole session, torn down at its end."""
    bindir = _find_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries (initdb, postgres) are not installed "
                 "(run scripts/bootstrap)")
    run_as = _run_as()
    # Not pytest's tmp_path: its parents are 0700 root under root, so unreachable to postgres.
    root = Path(tempfile.mkdtemp(prefix="edgeward-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if run_as:
            os.chown(root, run_as["user"], run_as["group"])
        datadir = root / "data"
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(datadir), "--username", PG_USER,
             "--auth", "trust", "--no-sync", "--encoding", "UTF8", "--locale", "C"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=root, check=False,
            **run_as)
        if initdb.returncode != 0:
            pytest.fail(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}{initdb.stderr}")
        proc, cluster = _start(bindir, datadir, root, root / "postgres.log", run_as)
        yield cluster
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path, template: str | None
                    ) -> Iterator[str]:
    """A new database on the parametrised backend: empty, or a copy of ``template``."""
    if request.param == "sqlite":
        path = tmp_path / "edgeward.db"
        if template is not None:
            shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    dbname = f"edgeward_{uuid.uuid4().hex[:16]}"
    with cluster.connect() as conn:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
        if template is not None:
            create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(dbname), sql.Identifier(template))
        conn.execute(create)
    try:
        yield cluster.url(dbname)
    finally:
        with cluster.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(dbname)))


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Databases migrated to head once a session, copied for each test: a server's start
    then finds its schema current (the migrations themselves are tested from empty)."""
    made: dict[str, str] = {}
    sqlite = tmp_path_factory.mktemp("migrated") / "template.db"
    db = Database(f"sqlite:///{sqlite}")
    try:
        migrate.upgrade(db)
    finally:
        db.close()
    made["sqlite"] = str(sqlite)
    return made


def _postgres_template(request: pytest.FixtureRequest) -> str:
    """The PostgreSQL template, made on first use in this session's cluster."""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = "edgeward_migrated_template"
    if name not in cluster.templates:
        with cluster.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        db = Database(cluster.url(name))
        try:
            migrate.upgrade(db)
        finally:
            db.close()
        cluster.templates.add(name)
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 migrated_templates: dict[str, str]) -> Iterator[str]:
    """A SQLAlchemy URL to a database at the current schema (no rows), once on SQLite
    and once on PostgreSQL."""
    template = migrated_templates["sqlite"] if request.param == "sqlite" else \
        _postgres_template(request)
    with _fresh_database(request, tmp_path, template) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database (no schema), on SQLite and on PostgreSQL:
    for the migrations' own tests."""
    with _fresh_database(request, tmp_path, None) as url:
        yield url


FLEET_SERIALS = ("gw-1", "gw-2")
# The alert tests' web hook receivers listen on loopback, which a server's hooks reach only
# when its operator allows it (``--hook-network``), as these servers' operator does.
HOOK_RECEIVERS = ("127.0.0.0/8", "::1/128")


@pytest.fixture(scope="session")
def fleet_template(factory_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``gw-1`` and ``gw-2`` provisioned once a session by a copy of the factory, their
    boards powered off: a fleet test copies them and boots, which is what provisioning
    leaves (a booted board), for a tenth of the cost."""
    root = tmp_path_factory.mktemp("fleet-template")
    shutil.copytree(factory_template, root / "factory")
    factory = open_factory(root / "factory")
    for serial in FLEET_SERIALS:
        provision(factory, root / serial, serial, None, NOW)
        VirtualBoard.open(root / serial).power_off()
    return root


def _copy_provisioned(template: Path, factory: Factory, into: Path) -> dict[str, VirtualBoard]:
    """The template's gateways into ``into``, their records and escrow into ``factory``
    (a copy of the same factory), each board booted."""
    for serial in FLEET_SERIALS:  # cp keeps the flash images sparse (1 GiB apparent each)
        subprocess.run(["cp", "-a", "--sparse=always", str(template / serial),
                        str(into / serial)], check=True)
        for part in (f"records/{serial}.json", f"escrow/{serial}.sealed"):
            (factory.root / part).parent.mkdir(mode=0o700, exist_ok=True)
            shutil.copy2(template / "factory" / part, factory.root / part)
    boards = {}
    for serial in FLEET_SERIALS:
        board = VirtualBoard.open(into / serial)
        report = boot(board)
        assert report.verdict == "booted", report
        boards[serial] = board
    return boards


@pytest.fixture
def fleet(database_url: str, factory: Factory, fleet_template: Path, tmp_path: Path
          ) -> Iterator[Fleet]:
    """A running server (on both databases) and two provisioned, booted gateways."""
    boards = _copy_provisioned(fleet_template, factory, tmp_path)
    settings = Settings(tmp_path / "server", database_url, "127.0.0.1", free_port(),
                        (factory.root / "ca.pem",), (factory.release.known_good,),
                        hook_networks=HOOK_RECEIVERS)
    try:
        with Running(settings, dt.datetime.now(dt.UTC)) as server:
            yield Fleet(server, factory, boards, tmp_path)
    finally:
        for board in boards.values():  # and those the test added to fleet.boards
            board.power_off()
