"""``edgeward fleet events`` and ``edgeward fleet apps``, as processes, against a real
server over HTTPS: what a gateway reported, complain mode and the profile it learnt."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from edgeward.cli.fleet_apps import since_value, snippet
from edgeward.errors import InputError
from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_updates_api import prepare


class Cli:
    def __init__(self, fleet: Fleet, tmp: Path) -> None:
        self.fleet = fleet
        self.env = {**os.environ, "EDGEWARD_CONFIG": str(tmp / "operator"), "COLUMNS": "200"}
        self.tmp = tmp

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "edgeward", "fleet", *args],
                                capture_output=True, text=True, env=self.env, timeout=120)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def login(self, token: str) -> None:
        path = self.tmp / "token"
        path.write_text(token)
        self("login", "--server", self.fleet.server.url, "--ca", self.fleet.ca,
             "--token-file", str(path))


def reported(fleet: Fleet) -> None:
    """gw-1 reports two apps, a complain-mode profile and some denials."""
    now = time.time()
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/apps", json={"apps": [
            {"name": "minibar", "version": "2.0.1", "publisher": "hotels",
             "state": "running", "mode": "enforce", "granted": ["network"],
             "withheld": ["network-manager"], "restarts": 2, "since": now - 100},
            {"name": "hvac", "version": "1.4", "publisher": "hotels", "state": "backoff",
             "mode": "enforce", "granted": [], "withheld": [], "restarts": 0,
             "since": None}]}).is_success
        assert gw.post("/v1/gateway/events", json={"events": [
            {"time": now - 7200, "app": "minibar", "kind": "file",
             "what": "read /etc/shadow denied (permissions)", "count": 3},
            {"time": now - 60, "app": "hvac", "kind": "network",
             "what": "connect [2001:db8::1]:443 denied (egress)"},
            {"time": now - 30, "app": "", "kind": "sandbox",
             "what": "bubblewrap refused to start"}]}).json()["accepted"] == 3
        assert gw.post("/v1/gateway/profiles", json={
            "app": "hvac", "version": "1.4", "interfaces": ["serial-port:ttyUSB0"],
            "egress": ["[2001:db8::1]:443", "api.hvac.example:443"],
            "denied": [{"what": "write /usr/lib/x denied (read-only)", "count": 2}],
            "observed_from": now - 3600, "observed_to": now}).is_success


@ONE_DATABASE
def test_fleet_events_and_apps_end_to_end(fleet: Fleet, tmp_path: Path) -> None:
    setup = prepare(fleet)
    reported(fleet)
    cli = Cli(fleet, tmp_path)
    cli.login(setup.tokens["hotels/eyes"])
    listed = cli.json("events")
    assert [(e["kind"], e["app"]) for e in listed] == [
        ("sandbox", ""), ("network", "hvac"), ("file", "minibar")]
    assert [e["kind"] for e in cli.json("events", "--since", "1h")] == ["sandbox", "network"]
    assert [e["kind"] for e in cli.json("events", "--app", "minibar")] == ["file"]
    assert [e["kind"] for e in cli.json("events", "--kind", "network", "--gateway", "gw-1")
            ] == ["network"]
    assert len(cli.json("events", "--limit", "1")) == 1
    since = dt.datetime.fromtimestamp(time.time() - 45, dt.UTC).isoformat()
    assert [e["kind"] for e in cli.json("events", "--since", since)] == ["sandbox"]
    table = cli("events").stdout
    assert "[2001:db8::1]:443" in table and "(gateway)" in table  # brackets kept as text
    bad = cli("events", "--since", "last week", ok=False)
    assert bad.returncode == 3 and "--since" in bad.stderr

    status = {a["name"]: a for a in cli.json("apps", "gw-1")}
    assert status["minibar"]["withheld"] == ["network-manager"]
    assert status["hvac"]["profile"] is True and status["hvac"]["state"] == "backoff"
    assert cli.json("apps", "status", "gw-1") == list(status.values())
    shown = cli("apps", "gw-1").stdout
    assert "not granted: network-manager" in shown and "minibar" in shown
    assert "no apps" in cli("apps", "gw-2").stdout

    denied = cli("apps", "mode", "gw-1", "hvac", "complain", "--test-gateway", ok=False)
    assert denied.returncode == 4 and "may not app:mode" in denied.stderr  # a viewer
    cli.login(setup.tokens["hotels/ops"])
    unacknowledged = cli("apps", "mode", "gw-1", "hvac", "complain", ok=False)
    assert unacknowledged.returncode == 3 and "--test-gateway" in unacknowledged.stderr
    made = cli.json("apps", "mode", "gw-1", "hvac", "complain", "--test-gateway")
    assert (made["mode"], made["previous"]) == ("complain", "enforce")
    status = {a["name"]: a for a in cli.json("apps", "gw-1")}
    assert status["hvac"]["desired_mode"] == "complain"
    assert "complain requested" in cli("apps", "gw-1").stdout
    back = cli("apps", "mode", "gw-1", "hvac", "enforce").stdout
    assert "hvac on gw-1: enforce (was complain)" in back
    assert {e["action"] for e in cli.json("audit")} >= {"app.mode"}

    profile = cli.json("apps", "profile", "gw-1", "hvac")
    assert profile["interfaces"] == ["serial-port:ttyUSB0"]
    text = cli("apps", "profile", "gw-1", "hvac").stdout
    manifest = tomllib.loads(text)  # comments and the snippet: valid TOML as printed
    assert manifest == {"plugs": ["serial-port:ttyUSB0"],
                        "egress": {"allow": ["[2001:db8::1]:443", "api.hvac.example:443"]}}
    assert "# still denied" in text and "write /usr/lib/x denied (read-only) (x2)" in text
    missing = cli("apps", "profile", "gw-1", "minibar", ok=False)
    assert missing.returncode == 3 and "no profile" in missing.stderr
    cli.login(setup.tokens["other/ops"])
    assert cli.json("events") == []
    assert cli("apps", "gw-1", ok=False).returncode == 3  # not found: another tenant's


def test_every_new_command_has_help() -> None:
    for args in (["events"], ["apps"], ["apps", "status"], ["apps", "mode"],
                 ["apps", "profile"]):
        result = subprocess.run([sys.executable, "-m", "edgeward", "fleet", *args, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr


def test_since_values() -> None:
    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert float(since_value("10m", now)) == (now - dt.timedelta(minutes=10)).timestamp()
    assert float(since_value("1d", now)) == (now - dt.timedelta(days=1)).timestamp()
    assert since_value("2026-01-01T10:00:00Z", now) == "2026-01-01T10:00:00Z"
    assert since_value("1767225600", now) == "1767225600"
    with pytest.raises(InputError):
        since_value("yesterday", now)


def test_the_snippet_says_what_stays_denied() -> None:
    base = {"app": "a", "version": "1", "gateway": "gw-1", "observed_from": "x",
            "observed_to": "y", "manifest": 'plugs = []\n\n[egress]\nallow = []\n'}
    assert "still denied" not in snippet({**base, "denied": []})
    assert "#   ptrace (x4)" in snippet({**base, "denied": [{"what": "ptrace", "count": 4}]})
