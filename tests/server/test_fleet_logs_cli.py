"""``edgeward fleet logs``, as a process, against a real server over HTTPS (SQLite and
PostgreSQL): search by gateway, app, time and words, page on, the lines around an
alert, and refusals."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_fleet_apps_cli import Cli
from tests.server.test_logs import line, raise_alert, ship
from tests.server.test_updates_api import prepare


@ONE_DATABASE
def test_fleet_logs_end_to_end(fleet: Fleet, tmp_path: Path) -> None:
    setup = prepare(fleet)
    now = time.time()
    ship(fleet, "gw-1", [
        line("miner started", now - 7200), line("hashrate 90 MH/s [bold]x[/bold]", now - 120),
        line("ERROR cpu quota hit", now - 60, level="error"),
        line("update check failed: connection refused", now - 30, app="", source="agent",
             level="warning")])
    ship(fleet, "gw-2", [line("connection refused by broker", now - 10, app="hvac")])
    alert = raise_alert(fleet, "gw-1", "cpu.anomaly",
                        dt.datetime.fromtimestamp(now - 90, dt.UTC), app="miner")
    cli = Cli(fleet, tmp_path)
    cli.login(setup.tokens["hotels/eyes"])

    every = cli.json("logs")
    assert every["alert"] is None
    assert [x["text"] for x in every["lines"]] == [
        "connection refused by broker", "update check failed: connection refused",
        "ERROR cpu quota hit", "hashrate 90 MH/s [bold]x[/bold]", "miner started"]
    assert [x["text"] for x in cli.json("logs", "--gateway", "gw-2")["lines"]] == [
        "connection refused by broker"]
    assert [x["text"] for x in cli.json("logs", "--app", "miner", "--since", "1h")["lines"]
            ] == ["ERROR cpu quota hit", "hashrate 90 MH/s [bold]x[/bold]"]
    assert [x["text"] for x in cli.json("logs", "--until", "1h")["lines"]] == [
        "miner started"]
    assert [x["text"] for x in cli.json("logs", "--grep", "connection refus*",
                                        "--gateway", "gw-1")["lines"]] == [
        "update check failed: connection refused"]
    first = cli.json("logs", "--limit", "2")["lines"]
    rest = cli.json("logs", "--before", str(first[-1]["id"]))["lines"]
    assert [x["id"] for x in first + rest] == [x["id"] for x in every["lines"]]

    around = cli.json("logs", "--alert", str(alert))
    assert around["alert"]["kind"] == "cpu.anomaly"
    assert [x["text"] for x in around["lines"]] == [
        "hashrate 90 MH/s [bold]x[/bold]", "ERROR cpu quota hit",
        "update check failed: connection refused"]
    table = cli("logs", "--alert", str(alert)).stdout
    assert f"alert #{alert} cpu.anomaly" in table and "gw-1, app miner" in table
    assert table.index("hashrate") < table.index("cpu quota") < table.index("update check")
    assert "[bold]x[/bold]" in table  # shown as written, not taken for markup
    listing = cli("logs", "--limit", "2").stdout
    assert "newest first" in listing and f"--before {first[-1]['id']}" in listing

    refused = cli("logs", "--alert", str(alert), "--app", "miner", ok=False)
    assert refused.returncode != 0 and "--alert takes no other filter" in refused.stderr
    bad = cli("logs", "--until", "tomorrow", ok=False)
    assert bad.returncode != 0 and "--until 'tomorrow'" in bad.stderr
    missing = cli("logs", "--alert", "999999", ok=False)
    assert missing.returncode != 0 and "alert 999999 not found" in missing.stderr
    cli.login(setup.tokens["other/ops"])
    assert cli.json("logs")["lines"] == []
    assert cli("logs", "--grep", '" NEAR( *').stdout.strip() == "no log lines found"
    assert cli("logs", "--alert", str(alert), ok=False).returncode != 0


def test_fleet_logs_has_help() -> None:
    result = subprocess.run([sys.executable, "-m", "edgeward", "fleet", "logs", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--grep" in result.stdout and "--alert" in result.stdout
