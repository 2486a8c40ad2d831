"""``edgeward fleet findings`` as a process, against a real server over HTTPS: the
summary, a table per severity with what to do, filters, ``--json``."""

from __future__ import annotations

from pathlib import Path

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_findings_dashboard import with_findings
from tests.server.test_fleet_apps_cli import Cli

pytestmark = ONE_DATABASE


def test_fleet_findings_cli(fleet: Fleet, tmp_path: Path) -> None:
    setup = with_findings(fleet)
    cli = Cli(fleet, tmp_path)
    cli.login(setup.tokens["hotels/eyes"])
    answer = cli.json("findings")
    assert answer["summary"] == {"high": 3, "medium": 2, "low": 1, "total": 6}
    assert [f["severity"] for f in answer["findings"]] == [
        "high", "high", "high", "medium", "medium", "low"]
    only = cli.json("findings", "--gateway", "gw-2", "--severity", "high")
    assert [(f["gateway"], f["check"]) for f in only["findings"]] == [("gw-2", "fuse.debug")]
    assert [f["check"] for f in cli.json("findings", "--source", "fleet")["findings"]] == [
        "patches.behind"]
    table = cli("findings").stdout
    assert "3 high, 2 medium, 1 low (6 findings)" in table
    assert table.index("high (3)") < table.index("medium (2)") < table.index("low (1)")
    assert "What to do" in table and "set PermitRootLogin no" in table
    assert "[b]" not in table and "<b>nc</b>" in table  # printed as text, not markup
    missing = cli("findings", "--gateway", "gw-9", ok=False)
    assert missing.returncode != 0 and "no gateway gw-9" in missing.stderr
    assert "--severity [high|medium|low]" in cli("findings", "--help").stdout
    cli.login(setup.tokens["other/ops"])
    assert "no findings" in cli("findings").stdout
