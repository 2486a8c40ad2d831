"""The escape battery's world: a real fleet server, a gateway whose running agent installed
two apps from two publishers through TUF, a private system bus with stand-in BlueZ and
NetworkManager services, a serial port plugged in, and the hostile app taking orders.

Everything is made once per module (the agent keeps running between the attacks, as it
would on a gateway under attack) and torn down at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgeward.api_client import ApiClient, tls_context
from edgeward.device.agent import Agent, AgentSettings
from edgeward.device.apps import cgroups, store
from edgeward.release import appimage, publish
from edgeward.release.apppublish import publish_app
from tests.conftest import remove_scratch, require_tool, scratch_dir
from tests.device.dbusbus import Bus, Services, running_bus, running_services
from tests.device.sandboxing import need_root
from tests.escape import hostile
from tests.updates.world import World, make, serve

TENANT = "hotel"
GATEWAY = "gw-escape"


@dataclass
class Fleet:
    world: World
    agent: Agent
    ops: ApiClient
    bus: Bus
    services: Services
    allowed_port: int
    forbidden_port: int
    serial_master: int
    thread: threading.Thread
    said: list[str]
    started: float = field(default_factory=time.time)
    orders: int = 0

    @property
    def board(self):  # type: ignore[no-untyped-def]
        return self.agent.board

    def data(self, app: str) -> Path:
        return store.apps_dir(self.board) / app / "data"

    def attack(self, name: str, arg: Any = None, timeout: float = 60.0) -> dict[str, Any]:
        """Order the hostile daemon to try ``name``; what it got back."""
        self.orders += 1
        inbox = self.data("intruder") / "inbox"
        order = inbox / f"{self.orders:04d}.json"
        tmp = inbox / f".{self.orders:04d}.tmp"
        tmp.write_text(json.dumps({"name": name, "arg": arg}))
        uid = inbox.stat().st_uid
        os.chown(tmp, uid, uid)
        tmp.rename(order)
        answer = self.data("intruder") / "outbox" / f"{self.orders:04d}.json"
        end = time.monotonic() + timeout
        while not answer.exists():
            if time.monotonic() > end:
                raise AssertionError(f"the hostile app did not answer {name}")
            time.sleep(0.05)
        return dict(json.loads(answer.read_text()))

    def events(self, app: str = "intruder") -> list[dict[str, Any]]:
        """The server's events for ``app`` ("": the gateway's own) since the start."""
        since = self.started - 5
        query = f"/v1/events?gateway={GATEWAY}&since={since}&limit=1000"
        found = self.ops.call("GET", query + (f"&app={app}" if app else ""))
        return [e for e in found if e["app"] == app]

    def reported(self, match: Callable[[dict[str, Any]], bool], app: str = "intruder",
                 timeout: float = 15.0) -> dict[str, Any]:
        """The event on the fleet server that ``match``es, waiting for it to arrive."""
        end = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(app) if match(e)]
            if found:
                return found[0]
            if time.monotonic() > end:
                raise AssertionError("not reported to the fleet server; it has: " + "; ".join(
                    e["what"] for e in self.events(app)))
            time.sleep(0.2)

    def beats(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int((self.data("minibar") / "beat").read_text())
        return 0

    def apps(self) -> dict[str, dict[str, Any]]:
        rows = self.ops.call("GET", f"/v1/gateways/{GATEWAY}/apps")
        return {r["name"]: r for r in rows}


def _listener() -> tuple[socket.socket, threading.Event]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                conn.sendall(b"welcome\n")
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, stop


def _publish(world: World, tenant: str, name: str, files: dict[str, str], manifest: str
             ) -> None:
    source = world.tmp / f"src-{name}"
    source.mkdir()
    (source / "app.toml").write_text(f'name = "{name}"\nversion = "1.0"\n'
                                     f'publisher = "{tenant}"\nsummary = "{name}"\n{manifest}')
    for rel, text in files.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text(text)
        (source / rel).chmod(0o755)
    image = appimage.build(source, world.tmp / "images").path
    with world.admin() as client:
        publish.add_tenant(client, world.ws, tenant, None, dt.datetime.now(dt.UTC))
        publish_app(client, world.ws.key(f"apps-{tenant}"), image, dt.datetime.now(dt.UTC))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    need_root()
    for tool in ("mksquashfs", "zstd", "bwrap", "xdg-dbus-proxy", "dbus-send"):
        require_tool(tool)
    root = tmp_path_factory.mktemp("escape")
    make(root)
    where = scratch_dir("edgeward-escape-")
    where.chmod(0o755)
    allowed, stop_allowed = _listener()
    forbidden, stop_forbidden = _listener()
    master, slave = os.openpty()
    with contextlib.ExitStack() as stack:
        stack.callback(remove_scratch, where)
        stack.callback(os.close, master)
        for server, stop in ((allowed, stop_allowed), (forbidden, stop_forbidden)):
            stack.callback(server.close)
            stack.callback(stop.set)
        bus = stack.enter_context(running_bus())
        services = stack.enter_context(running_services(bus))
        world = stack.enter_context(serve(root))
        agent = world.gateway(GATEWAY, where)
        agent.board.attach_serial("ttyUSB0", Path(os.ttyname(slave)))
        os.close(slave)
        _publish(world, "acme", "minibar", {"bin/stock": hostile.MINIBAR},
                 'plugs = ["serial-port:ttyUSB0"]\n[daemons.stock]\nexec = "bin/stock"\n')
        port = allowed.getsockname()[1]
        _publish(world, "evil", "intruder", {"bin/attacker": hostile.ATTACKER},
                 'plugs = ["network", "bluez", "network-manager"]\n'
                 f'[egress]\nallow = ["127.0.0.1/32:{port}"]\n'
                 '[resources]\nmemory = "64M"\npids = 24\ncpu = 0.2\n'
                 '[daemons.attacker]\nexec = "bin/attacker"\n')
        with world.admin() as admin:
            admin.call("POST", "/v1/tenants", {"name": TENANT})
            admin.call("POST", "/v1/users", {"name": "ops", "role": "admin", "tenant": TENANT})
            admin.call("POST", f"/v1/gateways/{GATEWAY}/assign", {"tenant": TENANT})
            admin.call("POST", "/v1/groups", {"name": "rooms", "tenant": TENANT})
            admin.call("POST", "/v1/groups/rooms/gateways", {"serial": GATEWAY,
                                                              "tenant": TENANT})
            admin.call("PUT", "/v1/groups/rooms/apps/minibar", {
                "publisher": "acme", "version": "1.0", "grants": ["serial-port:ttyUSB0"],
                "tenant": TENANT})
            admin.call("PUT", "/v1/groups/rooms/apps/intruder", {
                "publisher": "evil", "version": "1.0", "grants": ["network", "bluez"],
                "tenant": TENANT})
            token = admin.call("POST", "/v1/tokens", {"user": "ops", "tenant": TENANT})["token"]
        ops = stack.enter_context(ApiClient(world.server.url, tls_context(str(world.ca)),
                                            token))
        said: list[str] = []  # what the agent says (shown when a test fails)
        running = Agent(agent.board, AgentSettings(
            world.server.url, interval=0.5, update_every=1.0, backoff_base=0.05,
            backoff_cap=0.5, system_bus=bus.address),
            lambda m: said.append(f"{time.monotonic():.1f} {m}"))
        thread = threading.Thread(target=running.run, name="agent", daemon=True)
        thread.start()

        def stop_agent() -> None:
            running.stop.set()
            thread.join(timeout=60)
            for name in ("minibar", "intruder"):
                with contextlib.suppress(Exception):
                    cgroups.kill(cgroups.existing(name))
                    store.remove(agent.board, name)
                    cgroups.remove(cgroups.existing(name))

        stack.callback(stop_agent)
        fleet = Fleet(world, running, ops, bus, services, port, forbidden.getsockname()[1],
                      master, thread, said)
        end = time.monotonic() + 90
        while not ((fleet.data("intruder") / "outbox").is_dir() and fleet.beats() > 0
                   and {a.get("state") for a in fleet.apps().values()} == {"running"}
                   and len(fleet.apps()) == 2):
            if time.monotonic() > end or not thread.is_alive():
                raise AssertionError("the agent did not install and start both apps")
            time.sleep(0.2)
        yield fleet

