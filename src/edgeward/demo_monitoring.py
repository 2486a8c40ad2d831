"""The demo's fifth part: a crypto miner in one gateway's app, seen, shown and stopped.

- ``acme`` publishes *weather* (it polls a sensor, a light load); the hotel assigns it
  to gw-0001, whose agent reports telemetry every ``INTERVAL`` seconds (30 in the
  field: shortened here so the demo does not take minutes);
- after a quiet spell an attacker gets code run inside the app (standing in: a file in
  its data folder): it drops a miner binary and tries to run it, which the sandbox
  refuses (its writable folder is not executable) and reports, then mines inside the
  app's own interpreter, and tries to reach its pool, which the egress filter refuses;
- the refused connection to the pool, a host none of the cohort talks to, is an alert
  within seconds (the denial is pushed at once); the app's CPU leaving its baseline is
  one two reports later (a jump is confirmed by a second report, so a lone spike is
  not an alert); both on the dashboard and over the API the demo reads them from, the
  miner's own log lines one query away; the operator stops the app from the alert, and
  the gateway does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.api_client import ApiClient
from edgeward.board.virtual import VirtualBoard
from edgeward.demo_apps import agent_running, build_app, remove_apps
from edgeward.device.apps import store, users
from edgeward.device.apps.runtime import SYSTEM_BUS
from edgeward.release.apppublish import publish_app
from edgeward.release.workspace import Workspace

INTERVAL = 2.0  # seconds between telemetry reports in the demo
QUIET_REPORTS = 10  # reports of the app at rest before the attack
WEATHER = r'''#!/usr/bin/python3
import os, socket, subprocess, sys, time
data = os.environ["EDGEWARD_DATA"]
print("weather 1.0: polling the roof sensor every second", flush=True)
while not os.path.exists(os.path.join(data, "mine")):
    sum(i * i for i in range(2000))  # a reading, averaged
    time.sleep(1)
print("update check: fetched https://updates.weather.example/patch.sh (unsigned)", flush=True)
dropped = os.path.join(data, "kworkerd")
with open(dropped, "wb") as f:
    f.write(b"\x7fELF" + b"\0" * 60)
os.chmod(dropped, 0o755)
try:
    subprocess.run([dropped, "--donate-level", "0"], timeout=2)
except OSError as e:
    print(f"xmrig: exec {dropped} failed: {e}; mining in-process instead", flush=True)
print("xmrig 6.21.0: pool stratum+tcp://203.0.113.66:3333, 1 thread, randomx", flush=True)
last = 0.0
while True:
    x = 0
    for i in range(200000):
        x = (x * 1103515245 + i) & 0xFFFFFFFF
    if time.monotonic() - last > 5:
        last = time.monotonic()
        try:
            socket.create_connection(("203.0.113.66", 3333), 1)
        except OSError as e:
            print(f"xmrig: pool not reachable ({e}); hashing on", flush=True)
'''


@dataclass
class MonitorStory:
    gateway: str = ""
    interval: float = INTERVAL
    quiet_reports: int = 0
    first_alert_after: float | None = None  # seconds from the attack to its first alert
    first_alert: dict[str, Any] = field(default_factory=dict)
    detected_after: float | None = None  # seconds from the attack to the CPU alert
    alert: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    denials: list[str] = field(default_factory=list)
    stopped: str = ""  # how the order to stop the app went

    @property
    def ok(self) -> bool:
        return (self.first_alert_after is not None
                and self.first_alert_after <= INTERVAL + 1.0  # within one report interval
                and self.detected_after is not None and self.alert.get("app") == "weather"
                and any("xmrig" in line for line in self.logs) and self.stopped == "done")

    def to_dict(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "interval": self.interval,
                "quiet_reports": self.quiet_reports,
                "first_alert_after": self.first_alert_after, "first_alert": self.first_alert,
                "detected_after": self.detected_after, "alert": self.alert,
                "logs": self.logs, "denials": self.denials, "stopped": self.stopped}


def _wait(check: Callable[[], Any], timeout: float, step: float = 0.25) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(step)
    return None


def _reports(ops: ApiClient, gateway: str) -> int:
    series = ops.call("GET", f"/v1/gateways/{gateway}/metrics?metric=cpu_percent&app=weather"
                             f"&since={time.time() - 600:.0f}")
    return sum(int(p["count"]) for p in series["points"])


def _alert(ops: ApiClient, gateway: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
    """The oldest alert about weather of one of ``kinds``."""
    found = [a for a in ops.call("GET", f"/v1/alerts?gateway={gateway}&limit=50")
             if a["kind"] in kinds and a.get("app") == "weather"]
    return found[-1] if found else None


def _attack(device: Path) -> None:
    """What the attacker's foothold does first: a file in the app's data folder."""
    board = VirtualBoard.open(device)
    data = store.apps_dir(board) / "weather" / "data"
    user = users.user_for(board, "weather")
    (data / "mine").write_bytes(b"")
    os.chown(data / "mine", user.uid, user.gid)


def run(directory: Path, admin: ApiClient, ops: ApiClient, ws: Workspace, url: str,
        device: Path, say: Callable[[str], None]) -> MonitorStory:
    story = MonitorStory(device.name)
    gw = story.gateway
    image = build_app(directory, "weather", "acme", WEATHER,
                   '[resources]\ncpu = 1.0\n[daemons.poll]\nexec = "bin/weather"\n')
    publish_app(admin, ws.key("apps-acme"), image, dt.datetime.now(dt.UTC))
    for old in ("minibar", "hvac"):
        with contextlib.suppress(Exception):
            ops.call("DELETE", f"/v1/groups/room-101/apps/{old}")
    ops.call("PUT", "/v1/groups/room-101/apps/weather", {"publisher": "acme", "version": "1.0"})
    say(f"monitoring: acme's weather app assigned to {gw}; its agent reports every "
        f"{INTERVAL:g} s (30 s in the field)")
    with contextlib.ExitStack() as stack:
        stack.callback(remove_apps, device)
        stack.enter_context(agent_running(device, url, SYSTEM_BUS, telemetry_every=INTERVAL))
        story.quiet_reports = _wait(lambda: (n := _reports(ops, gw)) >= QUIET_REPORTS and n,
                                    QUIET_REPORTS * INTERVAL + 90) or 0
        say(f"  {gw}: weather at rest for {story.quiet_reports} reports "
            "(its baseline starts from the cohort's prior)")
        _attack(device)
        started = time.monotonic()
        say(f"  {gw}: an attacker starts a miner inside weather")
        first = _wait(lambda: _alert(ops, gw, ("egress.blocked", "anomaly.cpu_percent")),
                      10 * INTERVAL + 30)
        if first is not None:
            story.first_alert_after = round(time.monotonic() - started, 1)
            story.first_alert = first
            say(f"  ALERT after {story.first_alert_after} s ({first['severity']}): "
                f"{first['detail']}")
        alert = _wait(lambda: _alert(ops, gw, ("anomaly.cpu_percent",)), 10 * INTERVAL + 30)
        if alert is not None:
            story.detected_after = round(time.monotonic() - started, 1)
            story.alert = alert
            say(f"  ALERT after {story.detected_after} s ({story.detected_after / INTERVAL:.1f}"
                f" intervals: a jump is confirmed by a second report; {alert['severity']}): "
                f"{alert['detail']}")
            around = ops.call("GET", f"/v1/logs?alert={alert['id']}&limit=50")
            story.logs = [f"{x['app'] or 'agent'}: {x['text']}" for x in around["lines"]
                          if x.get("app") == "weather"]
            for line in story.logs[:4]:
                say(f"  logs around it: {line}")
            order = ops.call("POST", f"/v1/gateways/{gw}/actions",
                             {"action": "stop-app", "app": "weather", "alert": alert["id"]})
            done = _wait(lambda: next((a for a in ops.call("GET", f"/v1/gateways/{gw}/actions")
                                       if a["id"] == order["id"]
                                       and a["status"] in ("done", "failed")), None), 30)
            story.stopped = str(done["status"]) if done else "not carried out"
            say(f"  the operator stopped weather from the alert: {story.stopped}"
                + (f" ({done['result']})" if done else ""))
        events = ops.call("GET", f"/v1/events?gateway={gw}&app=weather&limit=100")
        story.denials = sorted({e["what"] for e in events})
        for line in story.denials[:4]:
            say(f"  weather refused and reported: {line}")
    return story
