"""Signed updates through the command line, as a publisher and a field gateway run them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from edgeward.server.runner import Running, Settings
from tests.conftest import require_tool
from tests.integration.test_cli import edgeward
from tests.server.harness import free_port


def test_publish_promote_rotate_and_update_from_the_cli(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    require_tool("mksquashfs")
    require_tool("zstd")
    env = {"EDGEWARD_CONFIG": str(tmp_path / "operator")}
    data = tmp_path / "server"
    port = free_port()
    keys, factory, device = tmp_path / "keys", tmp_path / "factory", tmp_path / "gw"
    with Running(Settings(data, port=port), dt.datetime.now(dt.UTC)) as server:
        ca = data / "tls" / "server-ca.pem"
        edgeward("fleet", "login", "--server", server.url, "--ca", ca, "--token-file",
                 data / "admin-token", env=env)
        made = json.loads(edgeward("release", "init", keys, "--json", env=env).stdout)
        assert made["root_version"] == 1 and made["threshold"] == 2
        assert oct((keys / "keys" / "root-1.key").stat().st_mode & 0o777) == "0o600"
    edgeward("factory", "init", factory, "--tuf-root", keys / "root.json")
    settings = Settings(data, None, "127.0.0.1", port, (factory / "ca.pem",),
                        (factory / "release" / "known-good.json",))
    with Running(settings, dt.datetime.now(dt.UTC)) as server:
        edgeward("factory", "provision", "--factory", factory, "--device", device, "--serial",
                 "s-1", "--server", server.url, "--server-ca", ca)
        edgeward("device", "boot", "--device", device)
        fix = tmp_path / "fix.txt"
        fix.write_text("patched\n")
        built = json.loads(edgeward(
            "release", "os", "build", "--factory", factory, "--keys", keys, "--version",
            "1.1.0", "--security-version", "2", "--base", factory / "release", "--file",
            f"usr/share/edgeward/fix={fix}", "--out", tmp_path / "b110", "--json").stdout)
        assert built["delta"]["base_version"] == "1.0.0"
        published = json.loads(edgeward("release", "os", "publish", tmp_path / "b110",
                                         "--keys", keys, "--channel", "candidate", "--json",
                                         env=env).stdout)
        assert published["channel"] == "candidate" and len(published["targets"]) == 3
        again = edgeward("release", "os", "publish", tmp_path / "b110", "--keys", keys,
                         ok=False, env=env)
        assert again.returncode == 3 and "already published" in again.stderr

        def update(*extra: str) -> dict[str, str]:
            out = edgeward("device", "update", "--device", device, "--server", server.url,
                           "--json", *extra)
            return dict(json.loads(out.stdout))

        assert update()["action"] == "none"  # a gateway follows stable by default
        edgeward("release", "promote", "1.1.0", "--to", "stable", "--model", "ew-gw1",
                 "--keys", keys, env=env)
        done = update()
        assert done["action"] == "committed" and done["version"] == "1.1.0"
        status = json.loads(edgeward("device", "status", "--device", device, "--json").stdout)
        assert status["boot_env"]["active"] == "b"

        for role in ("timestamp", "snapshot", "root", "targets", "os"):
            edgeward("release", "keys", "rotate", role, "--keys", keys, env=env)
        roles = json.loads(edgeward("release", "status", "--json", env=env).stdout)["roles"]
        assert roles["root"]["version"] == 5 and roles["os"]["version"] >= 4
        assert list((keys / "keys").glob("root-1.key.retired-1"))

        edgeward("release", "os", "build", "--factory", factory, "--keys", keys, "--version",
                 "1.2.0", "--security-version", "2", "--out", tmp_path / "b120")
        edgeward("release", "os", "publish", tmp_path / "b120", "--keys", keys, "--channel",
                 "stable", env=env)
        done = update()  # the gateway walks root v1 -> v5 and takes the new release
        assert done["action"] == "committed" and done["version"] == "1.2.0"
        tuf_cache = device / "data" / "system" / "edgeward" / "tuf" / "root_history"
        assert (tuf_cache / "5.root.json").exists()

        refused = edgeward("device", "update", "--device", device, "--server", server.url,
                           "--version", "9.9.9", ok=False)
        assert refused.returncode == 4 and "not signed" in refused.stderr

