"""``edgeward sim --server``: simulated gateways get factory identities, enrol over mutual
TLS, check in, report and push events to a real fleet server, whose detectors alert on
the attacks injected (and an operator sees them)."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from edgeward.factory.station import Factory
from edgeward.server.runner import Running, Settings
from tests.server.harness import free_port


def test_a_simulated_fleet_reports_to_a_real_server_which_alerts_on_its_attacks(
        database_url: str, factory: Factory, tmp_path: Path) -> None:
    settings = Settings(tmp_path / "server", database_url, "127.0.0.1", free_port(),
                        (factory.root / "ca.pem",), (factory.release.known_good,))
    with Running(settings, dt.datetime.now(dt.UTC)) as server:
        ca = settings.data / "tls" / "server-ca.pem"
        done = subprocess.run(
            [sys.executable, "-m", "edgeward", "sim", "--server", server.url, "--ca", str(ca),
             "--factory", str(factory.root), "--gateways", "8", "--hours", "0.25",
             "--warmup", "10", "--attack", "miner", "--attack", "clone", "--pace", "fast",
             "--json"], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["errors"] == {} and result["gateways"] == 8
        steps = 25 * 2  # 10 + 15 minutes at 30 s
        assert result["sent"]["reports"] >= 8 * steps * 0.95
        assert result["sent"]["heartbeats"] == result["sent"]["reports"]
        assert result["sent"]["events"] >= 1  # the miner's pool connection, pushed at once
        attacked = {a["attack"]: a["gateway"] for a in result["attacks"]}
        token = (settings.data / "admin-token").read_text()
        with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {token}"},
                          verify=ssl.create_default_context(cafile=str(ca))) as admin:
            gateways = {g["serial"] for g in admin.get("/v1/gateways").json()}
            alerts = admin.get("/v1/alerts", params={"limit": 500}).json()
    assert {f"SIM-{result['run']}-{n:05d}" for n in range(1, 9)} <= gateways
    kinds = {(a["gateway"], a["kind"]) for a in alerts}
    assert (attacked["miner"], "new-remote") in kinds
    assert (attacked["miner"], "anomaly.cpu_percent") in kinds
    assert (attacked["clone"], "cloned-identity") in kinds
