"""Complain mode (issue 6 item 7), end to end: an operator runs an app in complain mode on a
test gateway; nothing it does is refused, what it does is watched, and the fleet server
gets back the smallest set of interfaces and egress rules that would let it run (and
what no interface would allow). Published again with exactly that profile and run
confined, the app works, and only what no interface allows is still denied."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeward.api_client import ApiClient, tls_context
from edgeward.device.agent import Agent, AgentSettings
from edgeward.device.apps import cgroups, profile, store
from edgeward.errors import InputError
from edgeward.release import appimage, publish
from edgeward.release.apppublish import publish_app
from tests.conftest import remove_scratch, require_tool, scratch_dir
from tests.device.dbusbus import running_bus, running_services
from tests.device.sandboxing import need_root
from tests.escape.conftest import _listener
from tests.integration.test_cli import edgeward
from tests.updates.world import World, make, serve

GATEWAY = "gw-lab"
HVAC = r'''#!/usr/bin/python3
import os, socket, subprocess, sys, time
port = int(sys.argv[1])
while True:
    with open("/sys/devices/virtual/net/lo/type") as f:
        f.read()
    with open("/dev/ttyUSB0", "w") as f:
        f.write("T=21\n")
    with socket.create_connection(("127.0.0.1", port), 3) as s:
        s.recv(10)
    subprocess.run(["dbus-send", "--system", "--print-reply", "--dest=org.bluez",
                    "/org/bluez/hci0", "org.bluez.Adapter1.StartDiscovery"],
                   capture_output=True, timeout=10)
    try:
        open("/etc/shadow").read()
    except OSError:
        pass
    with open(os.path.join(os.environ["EDGEWARD_DATA"], "ok"), "w") as f:
        f.write(str(time.time()))
    time.sleep(0.3)
'''


def _publish(world: World, version: str, manifest: str, port: int) -> None:
    source = world.tmp / f"hvac-{version}"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "hvac").write_text(HVAC)
    (source / "bin" / "hvac").chmod(0o755)
    (source / "app.toml").write_text(
        f'name = "hvac"\nversion = "{version}"\npublisher = "coolair"\nsummary = "HVAC"\n'
        f'{manifest}\n[daemons.control]\nexec = "bin/hvac {port}"\n')
    image = appimage.build(source, world.tmp / "images").path
    with world.admin() as client:
        publish_app(client, world.ws.key("apps-coolair"), image, dt.datetime.now(dt.UTC))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[World, Agent, ApiClient, int, Path]]:
    need_root()
    for tool in ("mksquashfs", "zstd", "bwrap", "xdg-dbus-proxy", "dbus-send"):
        require_tool(tool)
    make(tmp_path / "world")
    where = scratch_dir("edgeward-lab-")
    where.chmod(0o755)
    listener, stop_listener = _listener()
    master, slave = os.openpty()
    with contextlib.ExitStack() as stack:
        stack.callback(remove_scratch, where)
        stack.callback(os.close, master)
        stack.callback(listener.close)
        stack.callback(stop_listener.set)
        bus = stack.enter_context(running_bus())
        stack.enter_context(running_services(bus))
        world = stack.enter_context(serve(tmp_path / "world"))
        agent = world.gateway(GATEWAY, where)
        agent.board.attach_serial("ttyUSB0", Path(os.ttyname(slave)))
        os.close(slave)
        port = listener.getsockname()[1]
        with world.admin() as admin:
            publish.add_tenant(admin, world.ws, "coolair", None, dt.datetime.now(dt.UTC))
            admin.call("POST", "/v1/tenants", {"name": "hotel"})
            admin.call("POST", "/v1/users", {"name": "ops", "role": "admin", "tenant": "hotel"})
            admin.call("POST", f"/v1/gateways/{GATEWAY}/assign", {"tenant": "hotel"})
            admin.call("POST", "/v1/groups", {"name": "lab", "tenant": "hotel"})
            admin.call("POST", "/v1/groups/lab/gateways", {"serial": GATEWAY, "tenant": "hotel"})
            token = admin.call("POST", "/v1/tokens", {"user": "ops", "tenant": "hotel"})["token"]
        ops = stack.enter_context(ApiClient(world.server.url, tls_context(str(world.ca)), token))
        (world.tmp / "ops.token").write_text(token)
        running = Agent(agent.board, AgentSettings(
            world.server.url, interval=0.5, update_every=1.0, backoff_base=0.05,
            backoff_cap=0.5, system_bus=bus.address))
        thread = threading.Thread(target=running.run, daemon=True)
        thread.start()

        def stop() -> None:
            running.stop.set()
            thread.join(timeout=60)
            with contextlib.suppress(Exception):
                cgroups.kill(cgroups.existing("hvac"))
                store.remove(agent.board, "hvac")
                cgroups.remove(cgroups.existing("hvac"))

        stack.callback(stop)
        yield world, running, ops, port, where


def _wait(check: Any, timeout: float = 60.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            found = check()
            if found:
                return found
        if time.monotonic() > end:
            raise AssertionError("not in time")
        time.sleep(0.3)


def test_complain_mode_learns_the_profile_that_lets_the_app_run(
        lab: tuple[World, Agent, ApiClient, int, Path]) -> None:
    world, agent, ops, port, _ = lab
    _publish(world, "1.0", "", port)  # asks for nothing: confined, it cannot do its job
    ops.call("PUT", "/v1/groups/lab/apps/hvac", {"publisher": "coolair", "version": "1.0"})
    with pytest.raises(InputError, match="test_gateway"):  # a deliberate acknowledgement
        ops.call("PUT", f"/v1/gateways/{GATEWAY}/apps/hvac/mode", {"mode": "complain"})
    ops.call("PUT", f"/v1/gateways/{GATEWAY}/apps/hvac/mode",
             {"mode": "complain", "test_gateway": True})
    data = store.apps_dir(agent.board) / "hvac" / "data"
    _wait(lambda: (data / "ok").exists())  # nothing refused: it does its whole job
    learnt = _wait(lambda: (p := ops.call("GET", f"/v1/gateways/{GATEWAY}/apps/hvac/profile"))
                   and {"serial-port:ttyUSB0", "network", "hardware-observe", "bluez"}
                   <= set(p["interfaces"]) and p)
    assert learnt["egress"] == [f"127.0.0.1/32:{port}"]
    assert set(learnt["interfaces"]) == {"serial-port:ttyUSB0", "network", "hardware-observe",
                                         "bluez"}
    assert any(d["what"] == "read /etc/shadow" for d in learnt["denied"])
    env = {"EDGEWARD_CONFIG": str(world.tmp / "ops-config")}
    edgeward("fleet", "login", "--server", world.server.url, "--ca", world.ca,
             "--token-file", world.tmp / "ops.token", env=env)
    printed = edgeward("fleet", "apps", "profile", GATEWAY, "hvac", env=env).stdout
    assert f'allow = ["127.0.0.1/32:{port}"]' in printed and "/etc/shadow" in printed

    # the profile, pasted into the manifest and granted: it runs confined, and only
    # what no interface would allow is still denied
    snippet = profile.snippet(learnt)
    _publish(world, "1.1", "\n".join(line for line in snippet.splitlines()
                                     if not line.startswith("#")), port)
    ops.call("PUT", f"/v1/gateways/{GATEWAY}/apps/hvac/mode", {"mode": "enforce"})
    ops.call("PUT", "/v1/groups/lab/apps/hvac", {"publisher": "coolair", "version": "1.1",
                                                 "grants": learnt["interfaces"]})
    _wait(lambda: store.current(agent.board, "hvac").version == "1.1"
          and ops.call("GET", f"/v1/gateways/{GATEWAY}/apps")[0]["mode"] == "enforce"
          and ops.call("GET", f"/v1/gateways/{GATEWAY}/apps")[0]["state"] == "running")
    (data / "ok").unlink(missing_ok=True)
    switched = time.time()
    _wait(lambda: (data / "ok").exists())  # its whole loop, confined
    time.sleep(2)
    since = ops.call("GET", f"/v1/events?gateway={GATEWAY}&app=hvac&since={switched}")
    denials = [e for e in since if e["kind"] != "suppressed"]  # (a summary of the same)
    assert denials and {e["detail"].get("target") for e in denials} == {"/etc/shadow"}, since
