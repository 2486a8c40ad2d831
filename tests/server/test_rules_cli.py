"""Alert rules from the CLI against the real server (both databases): an operator adds,
lists and deletes them; a viewer cannot add; bad rules are refused; another tenant's
rules are not seen; a rule added here fires on the gateway's reports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_telemetry import alerts_of, post, report
from tests.server.test_updates_api import Setup, prepare

pytestmark = ONE_DATABASE


class Runner:
    """The CLI as a process, with its own operator config."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "EDGEWARD_CONFIG": str(home / "operator")}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgeward", "fleet", *args],
                              capture_output=True, text=True, env=self.env, timeout=120)


def login(run: Runner, fleet: Fleet, setup: Setup, who: str, home: Path) -> None:
    token = home / f"{who.replace('/', '-')}.token"
    token.write_text(setup.tokens[who])
    result = run("login", "--server", fleet.server.url, "--ca", fleet.ca, "--token-file",
                 str(token))
    assert result.returncode == 0, result.stderr


def test_rules_from_the_cli_fire_on_reports(fleet: Fleet, tmp_path: Path) -> None:
    setup = prepare(fleet)
    runner = Runner(tmp_path)
    login(runner, fleet, setup, "hotels/ops", tmp_path)
    added = runner("rules", "add", "hot-weather", "--metric", "cpu_percent", "--app", "*",
                   "--above", "50", "--for", "60", "--severity", "high", "--json")
    assert added.returncode == 0, added.stdout
    assert '"reads": "cpu_percent of any app > 50 for 60 s"' in added.stdout
    again = runner("rules", "add", "hot-weather", "--metric", "cpu_percent", "--above", "1")
    assert again.returncode != 0 and "already" in again.stderr
    bad = runner("rules", "add", "x", "--metric", "CPU", "--above", "1")
    assert bad.returncode != 0 and "metric" in bad.stderr
    listed = runner("rules", "--json")
    assert '"name": "hot-weather"' in listed.stdout
    start = time.time() - 600
    post(fleet, "gw-1", [report(start + 30 * i, app_cpu=70.0) for i in range(3)],
         os.urandom(16).hex())
    assert ("rule.hot-weather", "high") in {(a["kind"], a["severity"])
                                            for a in alerts_of(setup)}
    login(runner, fleet, setup, "hotels/eyes", tmp_path)
    denied = runner("rules", "add", "y", "--metric", "load1", "--above", "4")
    assert denied.returncode != 0
    login(runner, fleet, setup, "hotels/ops", tmp_path)
    assert runner("rules", "delete", "hot-weather").returncode == 0
    assert runner("rules", "delete", "hot-weather").returncode != 0
    assert "hot-weather" not in runner("rules", "--json").stdout
