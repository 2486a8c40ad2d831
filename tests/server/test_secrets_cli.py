"""``edgeward fleet secrets``, ``fleet recovery-key`` and ``fleet credentials`` as
processes against a real server: values from a file or stdin only, tables and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.server.harness import ONE_DATABASE, Fleet
from tests.server.test_secrets_api import tenants


class Cli:
    def __init__(self, fleet: Fleet, tmp: Path) -> None:
        self.fleet, self.tmp = fleet, tmp
        self.env = {**os.environ, "EDGEWARD_CONFIG": str(tmp / "operator"), "COLUMNS": "200"}

    def __call__(self, *args: str, stdin: str | None = None, ok: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "edgeward", "fleet", *args],
                                input=stdin if stdin is not None else "", capture_output=True,
                                text=True, env=self.env, timeout=120)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return json.loads(self(*args, "--json", stdin=stdin).stdout)

    def login(self, token: str) -> None:
        path = self.tmp / "token"
        path.write_text(token)
        self("login", "--server", self.fleet.server.url, "--ca", self.fleet.ca,
             "--token-file", str(path))


@ONE_DATABASE
def test_secrets_through_the_cli(fleet: Fleet, tmp_path: Path) -> None:
    t = tenants(fleet)
    with t.as_("hotels/ops") as ops:
        assert ops.post("/v1/groups", json={"name": "lobby"}).status_code == 201
    cli = Cli(fleet, tmp_path)
    cli.login(t.tokens["hotels/ops"])
    assert cli.json("secrets", "set", "minibar", "mqtt-password", stdin="from-stdin-1\n") == {
        "app": "minibar", "name": "mqtt-password", "group": None, "version": 1}
    source = tmp_path / "value.txt"
    source.write_text("from-a-file-2\n")
    said = cli("secrets", "set", "minibar", "mqtt-password", "--file", str(source)).stdout
    assert "version 2" in said
    assert cli.json("secrets", "set", "minibar", "mqtt-password", "--group", "lobby",
                    stdin="lobby-value")["group"] == "lobby"
    cli("secrets", "set", "hvac", "token", stdin="hvac-value")
    listed = cli.json("secrets", "list")
    assert [(s["app"], s["name"], s["group"], s["version"]) for s in listed] == [
        ("hvac", "token", None, 1), ("minibar", "mqtt-password", None, 2),
        ("minibar", "mqtt-password", "lobby", 1)]
    assert [s["app"] for s in cli.json("secrets", "list", "--app", "hvac")] == ["hvac"]
    table = cli("secrets", "list").stdout
    assert "mqtt-password" in table and "every gateway" in table and "lobby" in table
    assert "from-" not in table and "lobby-value" not in table
    # the trailing newline of stdin and of the file is not part of the value
    assert t.delivered("gw-2") == {"minibar/mqtt-password": (2, "from-a-file-2"),
                                   "hvac/token": (1, "hvac-value")}
    assert cli.json("secrets", "rm", "minibar", "mqtt-password", "--group", "lobby")[
        "revoked"] is True
    assert "revoked" in cli("secrets", "rm", "hvac", "token").stdout
    assert [(s["name"], s["group"]) for s in cli.json("secrets", "list")] == [
        ("mqtt-password", None)]
    # refusals: one line on stderr and an exit code; the value is never an argument
    empty = cli("secrets", "set", "minibar", "x", stdin="", ok=False)
    assert empty.returncode == 3 and "the value is empty" in empty.stderr
    bad = cli("secrets", "set", "Minibar", "x", stdin="v", ok=False)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1
    gone = cli("secrets", "rm", "minibar", "nothing", ok=False)
    assert gone.returncode == 3 and "no secret minibar/nothing" in gone.stderr
    positional = cli("secrets", "set", "minibar", "x", "the-value", ok=False)
    assert positional.returncode == 2  # no place for a value on the command line
    cli.login(t.tokens["hotels/eyes"])
    refused = cli("secrets", "set", "minibar", "x", stdin="v", ok=False)
    assert refused.returncode == 4 and "may not secret:manage" in refused.stderr
    assert len(cli.json("secrets", "list")) == 1


@ONE_DATABASE
def test_recovery_keys_and_credentials_through_the_cli(fleet: Fleet, tmp_path: Path) -> None:
    t = tenants(fleet)
    with fleet.gateway("gw-1") as gw:
        assert gw.post("/v1/gateway/recovery-key",
                       json={"recovery_key": "rk-AAAA-BBBB-CCCC"}).is_success
        for name, value in (("mqtt-password", "pw-1"), ("api-key", "[bold]k[/bold]")):
            assert gw.post("/v1/gateway/credentials", json={
                "app": "minibar", "name": name, "value": value}).is_success
    cli = Cli(fleet, tmp_path)
    cli.login(t.tokens["hotels/ops"])
    assert cli.json("recovery-key", "gw-1")["recovery_key"] == "rk-AAAA-BBBB-CCCC"
    assert cli("recovery-key", "gw-1").stdout.strip() == "rk-AAAA-BBBB-CCCC"
    missing = cli("recovery-key", "gw-2", ok=False)
    assert missing.returncode == 3 and "no recovery key" in missing.stderr
    listed = cli.json("credentials", "gw-1")
    assert [(c["app"], c["name"]) for c in listed] == [("minibar", "api-key"),
                                                       ("minibar", "mqtt-password")]
    assert [c["name"] for c in cli.json("credentials", "gw-1", "--name", "api-key")] == [
        "api-key"]
    table = cli("credentials", "gw-1").stdout
    assert "mqtt-password" in table and "pw-1" not in table
    shown = cli.json("credentials", "gw-1", "--app", "minibar", "--name", "mqtt-password",
                     "--reveal")
    assert shown["value"] == "pw-1"
    printed = cli("credentials", "gw-1", "--app", "minibar", "--name", "api-key", "--reveal")
    assert printed.stdout.strip() == "[bold]k[/bold]"  # printed as is, not as markup
    half = cli("credentials", "gw-1", "--reveal", ok=False)
    assert half.returncode == 3 and "--reveal needs --app and --name" in half.stderr
    cli.login(t.tokens["hotels/runner"])
    assert cli("recovery-key", "gw-1", ok=False).returncode == 4
    assert cli("credentials", "gw-1", "--app", "minibar", "--name", "mqtt-password",
               "--reveal", ok=False).returncode == 4
    assert len(cli.json("credentials", "gw-1")) == 2  # names are for every role
    cli.login(t.tokens["other/ops"])
    assert cli("recovery-key", "gw-1", ok=False).returncode == 3  # not found: not theirs
    actions = [(e["actor"], e["action"]) for e in t.audit("hotels/ops")]
    assert ("hotels/ops", "recovery-key.fetch") in actions
    assert ("hotels/runner", "recovery-key.fetch-refused") in actions
    assert ("other/ops", "recovery-key.fetch-refused") in actions
    assert ("hotels/ops", "credential.reveal") in actions
