"""The demo's third part: two apps from two publishers on one gateway, one misbehaving.

- ``acme`` publishes *minibar* (it reports stock to its cloud, a listener on the
  loopback its egress list names) and ``coolair`` publishes *hvac* (it talks to its
  own cloud, and every few seconds tries what it may not: /etc/shadow, the minibar's
  secret, NetworkManager over D-Bus, a host off its list, a raw socket, mount);
- the hotel's operator assigns both to gw-0001's group: minibar gets the network,
  hvac the network but not the network-manager interface it asks for;
- gw-0001's agent installs both through TUF and runs them confined; every refusal of
  hvac reaches the fleet server within seconds while minibar carries on undisturbed;
- on gw-0002, a test gateway, the operator runs hvac in complain mode and gets back
  the profile it would need (and what no interface would give it).

A private system bus (a dbus-daemon of the demo's own) stands in for the gateway's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward import demo_secrets
from edgeward.api_client import ApiClient
from edgeward.board.virtual import VirtualBoard
from edgeward.demo_secrets import SecretStory
from edgeward.device import identity
from edgeward.device.agent import Agent, AgentSettings
from edgeward.device.apps import cgroups, profile, store
from edgeward.errors import ToolError
from edgeward.release import appimage, publish
from edgeward.release.apppublish import publish_app
from edgeward.release.workspace import Workspace

TENANT = "demo-hotels"
RUN_FOR = 12.0  # seconds gw-0001's agent runs the apps
LEARN_FOR = 10.0  # seconds of complain mode on gw-0002
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={socket}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
"""
MINIBAR = r'''#!/usr/bin/python3
import os, socket, sys, time
port = int(sys.argv[1])
key_file = os.path.join(os.environ.get("EDGEWARD_SECRETS", "/run/secrets"), "billing-key")
while True:
    try:
        with open(key_file) as f:  # delivered by the fleet server, for this app only
            key = f.read().strip()
    except OSError:
        key = ""  # not delivered (yet): the cloud will not take its reports as signed
    with socket.create_connection(("127.0.0.1", port), 3) as s:
        s.sendall(f"key={key} stock: 4 water, 2 wine\n".encode())
    time.sleep(1)
'''
HVAC = r'''#!/usr/bin/python3
import ctypes, os, socket, subprocess, sys, time
port = int(sys.argv[1])
neighbour = os.environ["EDGEWARD_DATA"].replace("/hvac/data", "/minibar/secrets/billing-key")
libc = ctypes.CDLL(None, use_errno=True)
def attempt(what):
    try:
        what()
    except Exception:
        pass
while True:
    with socket.create_connection(("127.0.0.1", port), 3) as s:
        s.sendall(b"21.5 C\n")
    attempt(lambda: open("/etc/shadow").read())
    attempt(lambda: open(neighbour).read())
    attempt(lambda: socket.create_connection(("198.51.100.7", 443), 2))
    attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    libc.mount(b"none", b"/mnt", b"tmpfs", 0, None)
    subprocess.run(["dbus-send", "--system", "--print-reply",
                    "--dest=org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
                    "org.freedesktop.NetworkManager.Enable", "boolean:false"],
                   capture_output=True, timeout=10)
    time.sleep(2)
'''


@dataclass
class AppStory:
    gateway: str = ""
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # as the server has them
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # app -> events
    reports: dict[str, int] = field(default_factory=dict)  # app -> messages its cloud got
    profile: dict[str, Any] = field(default_factory=dict)
    lab: str = ""

    @property
    def ok(self) -> bool:
        hvac = {e["kind"] for e in self.events.get("hvac", [])}
        return (all(a.get("state") == "running" for a in self.apps.values())
                and len(self.apps) == 2
                and self.apps["hvac"].get("withheld") == ["network-manager"]
                and {"file", "network", "syscall", "dbus"} <= hvac
                and not self.events.get("minibar") and self.reports.get("minibar", 0) > 3
                and "network" in self.profile.get("interfaces", []))

    def to_dict(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "apps": self.apps, "events": self.events,
                "reports": self.reports, "profile": self.profile, "lab": self.lab}


class Cloud:
    """A vendor's cloud: a listener on the loopback counting what it is sent (and what
    came signed in with ``key``)."""

    def __init__(self, key: str = "") -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.received = self.signed = 0
        self.key = f"key={key} ".encode() if key else b"\0"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = self.sock.accept()
                with conn:
                    conn.settimeout(2)
                    data = conn.recv(200)
                    if data:
                        self.received += 1
                        self.signed += data.startswith(self.key)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@contextlib.contextmanager
def system_bus(where: Path) -> Iterator[str]:
    """The gateway's system bus, stood in for by a dbus-daemon of the demo's own."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        raise ToolError("dbus-daemon not found (Debian package dbus-daemon): run "
                        "scripts/bootstrap")
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o755)  # the apps' proxies (as the apps' users) connect to it
    socket_path = where / "system_bus_socket"
    (where / "bus.conf").write_text(BUS_CONFIG.format(socket=socket_path))
    log = (where / "bus.log").open("wb")
    process = subprocess.Popen([daemon, f"--config-file={where / 'bus.conf'}", "--nofork"],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    try:
        end = time.monotonic() + 10
        while not socket_path.exists():
            if time.monotonic() > end or process.poll() is not None:
                raise ToolError("the demo's dbus-daemon did not start: "
                                + (where / "bus.log").read_text(errors="replace"))
            time.sleep(0.05)
        yield f"unix:path={socket_path}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def build_app(directory: Path, name: str, publisher: str, script: str, manifest: str) -> Path:
    source = directory / "apps" / name
    (source / "bin").mkdir(parents=True)
    (source / "bin" / name).write_text(script)
    (source / "bin" / name).chmod(0o755)
    (source / "app.toml").write_text(f'name = "{name}"\nversion = "1.0"\n'
                                     f'publisher = "{publisher}"\nsummary = "{name}"\n'
                                     + manifest)
    return appimage.build(source, directory / "apps" / "images").path


@contextlib.contextmanager
def agent_running(device: Path, url: str, bus: str, telemetry_every: float = 0.0
           ) -> Iterator[Agent]:
    agent = Agent(VirtualBoard.open(device), AgentSettings(
        url, interval=1.0, update_every=1.0, backoff_base=0.1, backoff_cap=1.0,
        system_bus=bus, telemetry_every=telemetry_every, audit_every=0))
    thread = threading.Thread(target=agent.run, name=f"agent-{device.name}", daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop.set()
        thread.join(timeout=60)


def remove_apps(device: Path) -> None:
    board = VirtualBoard.open(device)
    for name in store.installed(board):
        group = cgroups.existing(name)
        cgroups.kill(group)
        with contextlib.suppress(Exception):
            store.remove(board, name)
        cgroups.remove(group)


def run(directory: Path, admin: ApiClient, ops: ApiClient, ws: Workspace, url: str,
        devices: list[Path], say: Callable[[str], None], secret: SecretStory) -> AppStory:
    """``devices``: the healthy gateways (the first runs both apps, the second learns);
    ``secret``: the fourth part's story, told on the first (demo_secrets.py)."""
    story = AppStory(devices[0].name, lab=devices[1].name)
    now = dt.datetime.now(dt.UTC)
    billing_key = demo_secrets.new_billing_key()
    minibar_cloud, hvac_cloud = Cloud(billing_key), Cloud()
    with contextlib.ExitStack() as stack:
        stack.callback(minibar_cloud.close)
        stack.callback(hvac_cloud.close)
        bus = stack.enter_context(system_bus(directory / "dbus"))
        for publisher, name, script, manifest in (
                ("acme", "minibar", MINIBAR,
                 f'plugs = ["network"]\n[egress]\nallow = ["127.0.0.1/32:{minibar_cloud.port}"]'
                 f'\n[daemons.stock]\nexec = "bin/minibar {minibar_cloud.port}"\n'),
                ("coolair", "hvac", HVAC,
                 f'plugs = ["network", "network-manager"]\n[egress]\n'
                 f'allow = ["127.0.0.1/32:{hvac_cloud.port}"]\n'
                 f'[daemons.control]\nexec = "bin/hvac {hvac_cloud.port}"\n')):
            publish.add_tenant(admin, ws, publisher, None, now)
            image = build_app(directory, name, publisher, script, manifest)
            publish_app(admin, ws.key(f"apps-{publisher}"), image, now)
            say(f"apps: {publisher} signed {name} 1.0 into its own TUF role")
        gw, lab = story.gateway, story.lab
        ops.call("POST", "/v1/groups", {"name": "room-101"})
        ops.call("POST", "/v1/groups/room-101/gateways", {"serial": gw})
        ops.call("PUT", "/v1/groups/room-101/apps/minibar",
                 {"publisher": "acme", "version": "1.0", "grants": ["network"]})
        ops.call("PUT", "/v1/groups/room-101/apps/hvac",
                 {"publisher": "coolair", "version": "1.0", "grants": ["network"]})
        say(f"apps: the hotel assigned minibar (acme) and hvac (coolair) to {gw}; hvac asks "
            "for network-manager too, and is not granted it")
        secret.gateway = gw
        secret.secret_version = demo_secrets.store_secret(ops, billing_key, say)
        stack.callback(remove_apps, devices[0])
        with agent_running(devices[0], url, bus):
            time.sleep(RUN_FOR)
            story.apps = {a["name"]: a for a in ops.call("GET", f"/v1/gateways/{gw}/apps")}
        for name in ("minibar", "hvac"):
            story.events[name] = list(ops.call(
                "GET", f"/v1/events?gateway={gw}&app={name}&limit=1000"))
        story.reports = {"minibar": minibar_cloud.received, "hvac": hvac_cloud.received}
        for name, app in story.apps.items():
            say(f"  {gw} {name}: {app['state']}, granted {', '.join(app['granted']) or '-'}"
                + (f", starts without {', '.join(app['withheld'])}" if app["withheld"] else ""))
        for line in sorted({e["what"] for e in story.events["hvac"]}):
            say(f"  hvac refused and reported: {line}")
        say(f"  minibar: {len(story.events['minibar'])} events, "
            f"{story.reports['minibar']} stock reports reached its cloud meanwhile")
        secret.signed_in = minibar_cloud.signed
        say(f"  minibar read its {demo_secrets.SECRET_NAME} in its sandbox and signed "
            f"{minibar_cloud.signed} of them with it")
        certificate = identity.cert_path(VirtualBoard.open(devices[0])).read_text()
        demo_secrets.stolen_flash(secret, devices[0], {
            "minibar's billing key": billing_key.encode(),
            "minibar's code": b"stock: 4 water", "hvac's code": b"198.51.100.7",
            "the gateway's certificate": certificate.splitlines()[1].encode()}, say)

        ops.call("POST", "/v1/groups", {"name": "lab"})
        ops.call("POST", "/v1/groups/lab/gateways", {"serial": lab})
        ops.call("PUT", "/v1/groups/lab/apps/hvac", {"publisher": "coolair", "version": "1.0"})
        ops.call("PUT", f"/v1/gateways/{lab}/apps/hvac/mode",
                 {"mode": "complain", "test_gateway": True})
        say(f"complain mode: hvac on {lab}, a test gateway: nothing refused, all watched")
        stack.callback(remove_apps, devices[1])
        with agent_running(devices[1], url, bus):
            time.sleep(LEARN_FOR)
        with contextlib.suppress(Exception):
            story.profile = ops.call("GET", f"/v1/gateways/{lab}/apps/hvac/profile")
        for line in profile.snippet(story.profile).splitlines():
            say(f"  learnt: {line}")
    return story
