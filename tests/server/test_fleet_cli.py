"""The agent and the operator CLI, as processes, against a real server over mTLS (on
SQLite: the API tests run on both databases)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgeward.factory.provision import provision
from edgeward.factory.station import Factory
from edgeward.server.runner import Running, Settings
from tests.conftest import NOW
from tests.server.harness import ONE_DATABASE, free_port


@dataclass
class Setup:
    server: Running
    tmp: Path
    env: dict[str, str]

    @property
    def ca(self) -> Path:
        return self.server.settings.data / "tls" / "server-ca.pem"

    def run(self, *args: str | Path, ok: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "edgeward", *map(str, args)],
                                capture_output=True, text=True, env=self.env, timeout=timeout)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def agent(self, serial: str, *extra: str, ok: bool = True
              ) -> subprocess.CompletedProcess[str]:
        return self.run("device", "agent", "--device", self.tmp / serial, "--server",
                        self.server.url, "--server-ca", self.ca, *extra, ok=ok)


@pytest.fixture
def setup(database_url: str, factory: Factory, tmp_path: Path) -> Iterator[Setup]:
    for serial in ("gw-1", "gw-2"):
        provision(factory, tmp_path / serial, serial, None, NOW)
    settings = Settings(tmp_path / "server", database_url, "127.0.0.1", free_port(),
                        (factory.root / "ca.pem",), (factory.release.known_good,))
    env = {**os.environ, "EDGEWARD_CONFIG": str(tmp_path / "operator")}
    with Running(settings, dt.datetime.now(dt.UTC)) as server:
        yield Setup(server, tmp_path, env)


@ONE_DATABASE
def test_agent_enrols_attests_and_operators_see_it(setup: Setup) -> None:
    for serial in ("gw-1", "gw-2"):
        state = json.loads(setup.agent(serial, "--once", "--json").stdout)
        assert state == {"enrolled": True, "attestation": "attested", "heartbeats": 1,
                         "last_error": None, "updates": []}
    admin_token = setup.server.settings.data / "admin-token"
    setup.run("fleet", "login", "--server", setup.server.url, "--ca", setup.ca,
              "--token-file", admin_token)
    setup.run("fleet", "tenants", "create", "hotels")
    setup.run("fleet", "users", "add", "ops", "--role", "admin", "--tenant", "hotels")
    issued = json.loads(setup.run("fleet", "tokens", "issue", "ops", "--tenant", "hotels",
                                  "--json").stdout)
    for serial in ("gw-1", "gw-2"):
        setup.run("fleet", "assign", serial, "--tenant", "hotels")
    token_file = setup.tmp / "ops.token"
    token_file.write_text(issued["token"])
    setup.run("fleet", "login", "--server", setup.server.url, "--ca", setup.ca,
              "--token-file", token_file)
    listed = json.loads(setup.run("fleet", "gateways", "--json").stdout)
    assert {(g["serial"], g["attestation"], g["slot"]) for g in listed} == {
        ("gw-1", "attested", "a"), ("gw-2", "attested", "a")}
    assert "gw-1" in setup.run("fleet", "gateways").stdout
    setup.run("fleet", "revoke", "gw-2")
    refused = setup.agent("gw-2", "--once", ok=False)
    assert refused.returncode == 4 and "revoked" in refused.stderr
    actions = {e["action"] for e in json.loads(setup.run("fleet", "audit", "--json").stdout)}
    assert {"gateway.assign", "gateway.revoke"} <= actions
    config = setup.tmp / "operator" / "fleet.json"
    assert oct(config.stat().st_mode & 0o777) == "0o600"


@ONE_DATABASE
def test_agent_refuses_to_run_without_a_verified_boot(setup: Setup) -> None:
    kernel = setup.tmp / "gw-1" / "flash" / "kernel_a.img"
    kernel.write_bytes(kernel.read_bytes()[:-3])
    assert setup.run("device", "boot", "--device", setup.tmp / "gw-1", ok=False).returncode == 5
    refused = setup.agent("gw-1", "--once", ok=False)
    assert refused.returncode == 6 and "after a verified boot" in refused.stderr


@ONE_DATABASE
def test_fleet_cli_refusals(setup: Setup) -> None:
    not_logged_in = setup.run("fleet", "gateways", ok=False)
    assert not_logged_in.returncode == 4 and "fleet login" in not_logged_in.stderr
    bad = setup.tmp / "bad.token"
    bad.write_text("ewt_not-a-token")
    wrong = setup.run("fleet", "login", "--server", setup.server.url, "--ca", setup.ca,
                      "--token-file", bad, ok=False)
    assert wrong.returncode == 4 and "valid API token" in wrong.stderr


@ONE_DATABASE
def test_agent_backs_off_while_the_server_is_away_and_stops_on_sigterm(setup: Setup) -> None:
    dead = f"https://127.0.0.1:{free_port()}"
    child = subprocess.Popen(
        [sys.executable, "-m", "edgeward", "device", "agent", "--device", setup.tmp / "gw-1",
         "--server", dead, "--server-ca", setup.ca, "--interval", "0.1"],
        stderr=subprocess.PIPE, text=True, env=setup.env)
    time.sleep(2.5)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr
    assert "unreachable" in stderr and "retrying in" in stderr and "stopping" in stderr


@ONE_DATABASE
def test_factory_enrols_at_provisioning(setup: Setup, factory: Factory) -> None:
    result = json.loads(setup.run(
        "factory", "provision", "--factory", factory.root, "--device", setup.tmp / "gw-9",
        "--serial", "gw-9", "--server", setup.server.url, "--server-ca", setup.ca,
        "--json").stdout)
    assert result["enrolled"] is True and result["attestation"] == "attested"
    again = json.loads(setup.agent("gw-9", "--once", "--json").stdout)
    assert again["attestation"] == "attested"  # the device kept the server's CA


def test_server_run_from_the_cli_on_the_embedded_default(tmp_path: Path,
                                                         factory: Factory) -> None:
    """`edgeward server run`: SQLite and a certificate made on first start; SIGTERM stops it."""
    port = free_port()
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-m", "edgeward", "server", "run", "--data", str(data), "--listen",
         f"127.0.0.1:{port}", "--trust-ca", str(factory.root / "ca.pem")],
        stderr=subprocess.PIPE, text=True)
    try:
        import ssl

        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                context = ssl.create_default_context(cafile=str(data / "tls/server-ca.pem"))
                health = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=context).json()
                break
            except (httpx.TransportError, FileNotFoundError, ssl.SSLError):
                assert child.poll() is None, child.stderr.read() if child.stderr else ""
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert health["status"] == "ok"
        assert (data / "fleet.db").exists()
        assert len(list((data / "manufacturers").glob("*.pem"))) == 1
        assert oct((data / "admin-token").stat().st_mode & 0o777) == "0o600"
        assert oct((data / "tls" / "server.key").stat().st_mode & 0o777) == "0o600"
    finally:
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr
    admin_token = (data / "admin-token").read_text()
    assert admin_token not in stderr  # the token is written once, never logged
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(entry["message"] == "request" for entry in logs)  # structured JSON logs
