"""The update world bench/update_install.py runs in (made as tests/updates/conftest.py makes it).

A fleet server on 127.0.0.1 with an initialised TUF repository, a release
workspace of offline keys, a factory whose first release ships that TUF root,
and gateways provisioned from it, booted, enrolled and attested; and trees of
incompressible files to build releases from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeward.api_client import ApiClient, tls_context
from edgeward.board.virtual import VirtualBoard
from edgeward.device.agent import Agent, AgentSettings, remember_server_ca
from edgeward.device.boot.chain import boot
from edgeward.factory import station
from edgeward.factory.provision import provision
from edgeward.files import load_private_key
from edgeward.release import osbuild, publish, roles, workspace
from edgeward.server.runner import Running, Settings
from edgeward.server.services.repository import ServerRepository
from edgeward.trust.keys import PrivateKey
from edgeward.trust.targets import OS_ROLE

MIB = 1 << 20
MODEL = "ew-gw1"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_tree(root: Path, size_mb: int, file_mb: int = 8) -> int:
    """``size_mb`` MiB of incompressible files under ``root``; returns the bytes written."""
    total = size_mb * MIB
    done, i = 0, 0
    while done < total:
        n = min(file_mb * MIB, total - done)
        path = root / "opt" / "payload" / f"blob-{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for off in range(0, n, MIB):
                f.write(os.urandom(min(MIB, n - off)))
        done, i = done + n, i + 1
    return done


def kernel_key(factory: station.Factory) -> PrivateKey:
    return load_private_key(factory.root / "offline" / "kernel.key", None, "kernel")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "loadavg_1m": os.getloadavg()[0]}


@dataclass
class World:
    tmp: Path
    server: Running
    ws: workspace.Workspace
    factory: station.Factory

    @property
    def ca(self) -> Path:
        return self.server.settings.data / "tls" / "server-ca.pem"

    def admin(self) -> ApiClient:
        token = (self.server.settings.data / "admin-token").read_text()
        return ApiClient(self.server.url, tls_context(str(self.ca)), token)

    def build(self, version: str, svn: int, tree: Path | None = None,
              base: Path | None = None) -> osbuild.Build:
        return osbuild.build(self.tmp / f"build-{version}", version, svn, MODEL,
                             kernel_key(self.factory), self.ws.root_json.read_bytes(), base,
                             tree=tree)

    def publish(self, build: osbuild.Build, channel: str = "stable") -> publish.Published:
        with self.admin() as client:
            return publish.publish_os(client, self.ws, build, channel, now(),
                                      stages=["100%"])

    def gateway(self, serial: str) -> Path:
        """Provision, boot, enrol and attest a gateway; return its board directory."""
        device = self.tmp / "gateways" / serial
        provision(self.factory, device, serial, None, now())
        board = VirtualBoard.open(device)
        report = boot(board)
        if report.verdict != "booted":
            raise RuntimeError(f"{serial} does not boot: {report.reason}")
        remember_server_ca(board, self.ca)
        agent = Agent(board, AgentSettings(self.server.url, once=True, update_every=0,
                                           backoff_base=0.01, backoff_cap=0.05))
        agent.run()
        if agent.state.attestation != "attested":
            raise RuntimeError(f"{serial} not attested: {agent.state.last_error}")
        return device


@contextlib.contextmanager
def world(tmp: Path) -> Iterator[World]:
    """Server data (online keys + initialised repository), workspace, factory; the server
    running in this process (its own threads) until the block ends."""
    at = now()
    repo = ServerRepository(tmp / "server" / "tuf", now)
    ws = workspace.create(tmp / "ws", 3, 2, None)
    root_keys = [ws.new_key(n) for n in ws.root_keys]
    targets_key, os_key = ws.new_key("targets"), ws.new_key(OS_ROLE)
    published = repo.online_public()
    online = {role: publish.online_key(published[role]) for role in ("snapshot", "timestamp")}
    r, t, o = roles.initial(root_keys, 2, targets_key, os_key, online, at)
    repo.initialise(r.to_bytes(), t.to_bytes(), {OS_ROLE: o.to_bytes()})
    ws.root_json.write_bytes(r.to_bytes())
    factory = station.init(tmp / "factory", MODEL, "Bench Gateways Ltd", "1.0.0", 1, None, at,
                           r.to_bytes())
    settings = Settings(tmp / "server", None, "127.0.0.1", free_port(),
                        (factory.root / "ca.pem",), (factory.release.known_good,))
    with Running(settings, now()) as server:
        yield World(tmp, server, ws, factory)
