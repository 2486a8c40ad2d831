"""The world update tests and benchmarks run in, made for real: a fleet server with an
initialised TUF repository, a release workspace of offline keys, a factory whose
first release ships that TUF root, and gateways provisioned from it, enrolled
and attested. No pytest here: bench/update_world.py uses it too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
from edgeward.trust.targets import OS_ROLE
from tests.server.harness import free_port

MODEL = "ew-gw1"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class World:
    tmp: Path
    server: Running
    ws: workspace.Workspace
    factory: station.Factory
    boards: dict[str, VirtualBoard] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)

    @property
    def ca(self) -> Path:
        return self.server.settings.data / "tls" / "server-ca.pem"

    def admin(self) -> ApiClient:
        token = (self.server.settings.data / "admin-token").read_text()
        return ApiClient(self.server.url, tls_context(str(self.ca)), token)

    def kernel_key(self):  # type: ignore[no-untyped-def]
        return load_private_key(self.factory.root / "offline" / "kernel.key", None, "kernel")

    def build(self, version: str, svn: int, base: Path | None = None, **kw: object
              ) -> osbuild.Build:
        return osbuild.build(self.tmp / f"build-{version}", version, svn, MODEL,
                             self.kernel_key(), self.ws.root_json.read_bytes(), base,
                             **kw)  # type: ignore[arg-type]

    def publish(self, build: osbuild.Build, channel: str = "stable",
                stages: list[str] | None = None) -> publish.Published:
        """Publish to ``channel``; its rollout is one 100% stage unless ``stages`` says."""
        with self.admin() as client:
            return publish.publish_os(client, self.ws, build, channel,
                                      dt.datetime.now(dt.UTC), stages=stages or ["100%"])

    def gateway(self, serial: str, where: Path | None = None, tpm: bool = False) -> Agent:
        """Provision, boot, enrol and attest a gateway (in ``where``, default the test's
        temp dir; with a TPM sealing its /data key if ``tpm``); return its agent."""
        device = (where or self.tmp) / serial
        provision(self.factory, device, serial, None, now(), tpm)
        board = VirtualBoard.open(device)
        assert boot(board).verdict == "booted"
        remember_server_ca(board, self.ca)
        agent = Agent(board, AgentSettings(self.server.url, once=True, update_every=0,
                                           backoff_base=0.01, backoff_cap=0.05))
        agent.run()
        assert agent.state.attestation == "attested"
        self.boards[serial], self.agents[serial] = board, agent
        return agent


def make(root: Path, manufacturer: str = "Test Gateways Ltd") -> None:
    """Server data (online keys + initialised repository), workspace and factory under
    ``root`` (the expensive part: made once, copied as often as wanted)."""
    at = now()
    repo = ServerRepository(root / "server" / "tuf", now)
    ws = workspace.create(root / "ws", 3, 2, None)
    root_keys = [ws.new_key(n) for n in ws.root_keys]
    targets_key, os_key = ws.new_key("targets"), ws.new_key(OS_ROLE)
    published = repo.online_public()
    online = {role: publish.online_key(published[role]) for role in ("snapshot", "timestamp")}
    r, t, o = roles.initial(root_keys, 2, targets_key, os_key, online, at)
    repo.initialise(r.to_bytes(), t.to_bytes(), {OS_ROLE: o.to_bytes()})
    ws.root_json.write_bytes(r.to_bytes())
    station.init(root / "factory", MODEL, manufacturer, "1.0.0", 1, None, at, r.to_bytes())


@contextlib.contextmanager
def serve(root: Path) -> Iterator[World]:
    """The world :func:`make` left under ``root``, its server running in this process."""
    fac = station.open_factory(root / "factory")
    settings = Settings(root / "server", None, "127.0.0.1", free_port(),
                        (fac.root / "ca.pem",), (fac.release.known_good,))
    with Running(settings, now()) as server:
        yield World(root, server, workspace.open_workspace(root / "ws", None), fac)
