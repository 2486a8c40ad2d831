"""edgeward app build: a checked app directory into a reproducible squashfs, or a refusal."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from edgeward.errors import ManifestError
from edgeward.release import appimage
from edgeward.release.credscan import scan_bytes
from tests.conftest import require_tool
from tests.integration.test_cli import edgeward

MANIFEST = b'''name = "minibar"
version = "2.0.1"
publisher = "acme"
summary = "Minibar"
plugs = ["network"]

[daemons.server]
exec = "bin/server --port 8080"
'''


def _app(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "app.toml").write_bytes(MANIFEST)
    server = root / "bin" / "server"
    server.write_text("#!/bin/sh\nexec sleep 3600\n")
    server.chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "minibar.conf").write_text("broker = mqtt.local\n"
                                               "password = ${BROKER_PASSWORD}\n")
    return root


def test_build_makes_a_reproducible_image(tmp_path: Path) -> None:
    require_tool("mksquashfs")
    source = _app(tmp_path / "app")
    first = appimage.build(source, tmp_path / "out1")
    os.utime(source / "bin" / "server", (1, 1))  # times do not matter
    second = appimage.build(source, tmp_path / "out2")
    assert first.path.name == "minibar_2.0.1.squashfs" and first.sha384 == second.sha384
    listing = subprocess.run(["unsquashfs", "-lls", str(first.path)], check=True,
                             capture_output=True, text=True).stdout
    assert "root/root" in listing and "squashfs-root/bin/server" in listing


@pytest.mark.parametrize(("name", "content", "what"), [
    ("etc/minibar.conf", "broker = mqtt.local\npassword = hunter2\n",
     "etc/minibar.conf:2: a literal value for 'password'"),
    ("etc/app.yaml", "mqtt:\n  api_key: 'sk-live-1234'\n",
     "etc/app.yaml:2: a literal value for 'api_key'"),
    ("keys/server.pem", "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n",
     "keys/server.pem:1: a private key (PEM)"),
    ("lib/cloud.py", "KEY = 'AKIAABCDEFGHIJKLMNOP'\n", "lib/cloud.py:1: an AWS access key id"),
])
def test_hard_coded_credentials_are_refused_and_located(tmp_path: Path, name: str,
                                                        content: str, what: str) -> None:
    source = _app(tmp_path / "app")
    path = source / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    with pytest.raises(appimage.CredentialsFound) as refused:
        appimage.build(source, tmp_path / "out")
    assert what in refused.value.message
    assert "hunter2" not in refused.value.message and "sk-live" not in refused.value.message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pointers_to_secrets_are_not_credentials() -> None:
    config = (b"password = ${BROKER_PASSWORD}\ntoken_file = /run/secrets/token\n"
              b"# password = example\npassword = \"\"\nsecret: env:APP_SECRET\n")
    assert scan_bytes("etc/app.conf", config) == []


def test_programs_must_be_executables_inside_the_app(tmp_path: Path) -> None:
    source = _app(tmp_path / "app")
    (source / "bin" / "server").chmod(0o644)
    with pytest.raises(ManifestError, match="not an executable file"):
        appimage.build(source, tmp_path / "out")
    (source / "bin" / "server").unlink()
    (source / "bin" / "server").symlink_to("../../../../bin/sh")
    with pytest.raises(ManifestError, match="leads out of the app|not in the app"):
        appimage.build(source, tmp_path / "out")


def test_app_build_from_the_cli(tmp_path: Path) -> None:
    require_tool("mksquashfs")
    source = _app(tmp_path / "app")
    out = json.loads(edgeward("app", "build", source, "--out", tmp_path / "out",
                              "--json").stdout)
    assert out["name"] == "minibar" and out["plugs"] == ["network"]
    assert out["programs"] == [{"name": "server", "argv": ["bin/server", "--port", "8080"],
                                "daemon": True, "restart": "on-failure"}]
    (source / "app.toml").write_bytes(MANIFEST.replace(b'"network"', b'"wifi-config"'))
    bad = edgeward("app", "build", source, "--out", tmp_path / "out", ok=False)
    assert bad.returncode == 3
    assert "app.toml line 5: unknown interface 'wifi-config'" in bad.stderr
