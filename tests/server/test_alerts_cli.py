"""``edgeward fleet alerts``, ``fleet remediate`` and ``fleet actions`` as processes against a
real server over TLS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.server.alerting import raise_alert
from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_updates_api import prepare


class Cli:
    def __init__(self, fleet: Fleet, token: str) -> None:
        self.env = {**os.environ, "EDGEWARD_CONFIG": str(fleet.tmp / "operator"),
                    "COLUMNS": "200"}
        token_file = fleet.tmp / "token"
        token_file.write_text(token)
        self("fleet", "login", "--server", fleet.server.url, "--ca", fleet.ca,
             "--token-file", token_file)

    def __call__(self, *args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "edgeward", *map(str, args)],
                                capture_output=True, text=True, env=self.env, timeout=120)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@ONE_DATABASE
def test_alerts_are_listed_handled_and_answered_from_the_cli(fleet: Fleet) -> None:
    setup = prepare(fleet)
    cli = Cli(fleet, setup.tokens["hotels/ops"])
    alert_id = raise_alert(fleet, "gw-1", "cpu-anomaly", app="minibar", severity="critical")
    raise_alert(fleet, "gw-2", "beacon", severity="low")
    listed = cli.json("fleet", "alerts")
    assert [(a["gateway"], a["kind"], a["status"]) for a in listed] == [
        ("gw-2", "beacon", "open"), ("gw-1", "cpu-anomaly", "open")]
    assert [a["id"] for a in cli.json("fleet", "alerts", "--severity", "critical")] == [
        alert_id]
    assert len(cli.json("fleet", "alerts", "--limit", "1")) == 1
    table = cli("fleet", "alerts", "--gateway", "gw-1").stdout
    assert "cpu-anomaly" in table and "critical" in table and "beacon" not in table

    assert cli.json("fleet", "alerts", "ack", str(alert_id))["status"] == "acked"
    said = cli("fleet", "alerts", "verdict", str(alert_id), "true-positive").stdout
    assert f"alert {alert_id}" in said and "true-positive" in said
    assert cli("fleet", "alerts", "verdict", str(alert_id), "perhaps", code=2).stderr
    ordered = cli.json("fleet", "remediate", "gw-1", "stop-app", "--app", "minibar",
                       "--alert", str(alert_id))
    assert (ordered["action"], ordered["app"], ordered["status"]) == (
        "stop-app", "minibar", "pending")
    shown = cli("fleet", "remediate", "gw-1", "quarantine").stdout
    assert "quarantine" in shown and "queued for gw-1" in shown
    refused = cli("fleet", "remediate", "gw-1", "cut-network", code=3)
    assert "needs the app" in refused.stderr
    assert cli.json("fleet", "remediate", "gw-1", "audit")["action"] == "audit"
    assert [a["action"] for a in cli.json("fleet", "actions", "gw-1")] == [
        "audit", "quarantine", "stop-app"]
    assert "stop-app" in cli("fleet", "actions", "gw-1").stdout
    assert cli.json("fleet", "show", "gw-1")["quarantined"] is True
    assert cli.json("fleet", "alerts", "resolve", str(alert_id))["status"] == "resolved"
    assert [a["kind"] for a in cli.json("fleet", "alerts", "--status", "open")] == ["beacon"]
    assert "no alert 999999" in cli("fleet", "alerts", "resolve", "999999", code=3).stderr

    hook = cli.json("fleet", "alerts", "hook", "set", "https://siem.example/edgeward")
    assert len(hook["key"]) == 64
    printed = cli("fleet", "alerts", "hook", "set", "https://siem.example/other").stdout
    assert "shown once" in printed and "https://siem.example/other" in printed
    shown_hook = cli.json("fleet", "alerts", "hook", "show")
    assert shown_hook["url"] == "https://siem.example/other" and "key" not in shown_hook
    assert "https://siem.example/other" in cli("fleet", "alerts", "hook", "show").stdout
    bad = cli("fleet", "alerts", "hook", "set", "http://siem.example/x", code=3)
    assert "https" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    cli("fleet", "alerts", "hook", "delete")
    assert "no alert hook" in cli("fleet", "alerts", "hook", "show", code=3).stderr


@ONE_DATABASE
def test_viewers_read_alerts_but_do_not_act(fleet: Fleet) -> None:
    setup = prepare(fleet, enrol=("gw-1",))
    cli = Cli(fleet, setup.tokens["hotels/eyes"])
    alert_id = raise_alert(fleet, "gw-1", "beacon")
    assert [a["id"] for a in cli.json("fleet", "alerts")] == [alert_id]
    assert "may not alert:manage" in cli("fleet", "alerts", "ack", str(alert_id),
                                         code=4).stderr
    assert "may not gateway:remediate" in cli("fleet", "remediate", "gw-1", "quarantine",
                                              code=4).stderr
    assert "may not alert:hook" in cli("fleet", "alerts", "hook", "show", code=4).stderr


def test_the_help_says_what_a_hook_may_be() -> None:
    cli_help = subprocess.run([sys.executable, "-m", "edgeward", "fleet", "alerts", "hook",
                               "set", "--help"], capture_output=True, text=True, check=True)
    assert "http:// only to this machine" in " ".join(cli_help.stdout.split())
    remediate_help = subprocess.run([sys.executable, "-m", "edgeward", "fleet", "remediate",
                                     "--help"], capture_output=True, text=True, check=True)
    assert "quarantine" in remediate_help.stdout
