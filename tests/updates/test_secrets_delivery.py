"""Secrets from the fleet server to an app, end to end: a real server over HTTPS, gateways
provisioned and booted for real, their agents, and the operator's command line.

An operator sets a secret; the gateway's agent, once attested, takes it (HPKE-sealed to
its identity key) into the app's encrypted folder, where only that app's sandbox reads
it; a rotation and a revocation reach the gateway; a gateway without a good attestation
is given nothing. The recovery key is escrowed by the agent, fetched by the tenant admin
and opens the data area of a gateway whose chain no longer boots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeward.device.agent import Agent
from edgeward.device.apps import runner
from edgeward.device.boot.chain import boot
from edgeward.device.boot.slots import stage_try
from edgeward.device.secrets import exchange, vault
from edgeward.device.storage import recovery, volume
from edgeward.errors import PermissionDenied
from tests.conftest import scratch_dir
from tests.device.apps_side import install
from tests.device.sandboxing import need_root
from tests.updates.conftest import World

PROBE = {"bin/probe": '#!/bin/sh\nexec /bin/sh -c "$1"\n'}
MANIFEST = 'credentials = ["broker-password"]\n[commands.probe]\nexec = "bin/probe"\n'


class Operator:
    """A tenant admin at the command line (``edgeward fleet ...`` as a process)."""

    def __init__(self, world: World, tmp: Path) -> None:
        with world.admin() as admin:
            admin.call("POST", "/v1/tenants", {"name": "hotels"})
            admin.call("POST", "/v1/users", {"name": "ops", "role": "admin",
                                             "tenant": "hotels"})
            token = admin.call("POST", "/v1/tokens", {"user": "ops", "tenant": "hotels"})
        self.env = {**os.environ, "EDGEWARD_CONFIG": str(tmp / "operator")}
        (tmp / "token").write_text(token["token"])
        self("fleet", "login", "--server", world.server.url, "--ca", str(world.ca),
             "--token-file", str(tmp / "token"))

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "edgeward", *args], input=stdin,
                              capture_output=True, text=True, env=self.env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    def json(self, *args: str, stdin: str = "") -> Any:
        return json.loads(self(*args, "--json", stdin=stdin).stdout)


def _assign(world: World, serial: str) -> None:
    with world.admin() as admin:
        admin.call("POST", f"/v1/gateways/{serial}/assign", {"tenant": "hotels"})


def _cat(agent: Agent, path: str) -> tuple[int, str]:
    done = runner.run(agent.board, "minibar", "probe", [f"cat {path}"])
    return done.returncode, done.stdout.decode() + done.stderr.decode()


@pytest.fixture
def ops(world: World, tmp_path: Path) -> Operator:
    return Operator(world, tmp_path)


@pytest.fixture
def gateway(world: World, ops: Operator) -> Agent:
    """gw-1 in hotels' fleet, attested, with the app minibar on it (in /var/tmp: the
    app's user must reach its folder)."""
    need_root()
    agent = world.gateway("gw-1", where=scratch_dir("edgeward-secrets-"))
    install(agent.board, "minibar", PROBE, MANIFEST)
    _assign(world, "gw-1")
    return agent


def test_a_secret_reaches_its_app_rotates_and_is_revoked(world: World, gateway: Agent,
        ops: Operator, tmp_path: Path) -> None:
    assert ops.json("fleet", "secrets", "set", "minibar", "api-token",
                    stdin="s3cret-one")["version"] == 1
    gateway.run()  # once: attest, then take the secrets
    assert _cat(gateway, "/run/secrets/api-token") == (0, "s3cret-one")

    ops("fleet", "secrets", "set", "minibar", "api-token", stdin="s3cret-two")
    gateway.run()
    assert _cat(gateway, "$EDGEWARD_SECRETS/api-token") == (0, "s3cret-two")
    assert vault.versions(gateway.board) == {"minibar": {"api-token": 2}}

    listed = ops("fleet", "secrets", "list").stdout
    assert "api-token" in listed and "s3cret" not in listed
    ops("fleet", "secrets", "rm", "minibar", "api-token")
    gateway.run()
    code, _ = _cat(gateway, "/run/secrets/api-token")
    assert code != 0 and vault.versions(gateway.board) == {}


def test_the_per_device_credential_reaches_the_server_and_no_other_gateway_shares_it(
        world: World, gateway: Agent, ops: Operator, tmp_path: Path) -> None:
    other = world.gateway("gw-2", where=scratch_dir("edgeward-secrets-"))
    install(other.board, "minibar", PROBE, MANIFEST)
    _assign(world, "gw-2")
    gateway.run()
    other.run()
    mine = vault.read(gateway.board, "minibar", vault.CREDENTIALS, "broker-password")
    theirs = vault.read(other.board, "minibar", vault.CREDENTIALS, "broker-password")
    assert mine and theirs and mine != theirs
    revealed = ops.json("fleet", "credentials", "gw-1", "--app", "minibar", "--name",
                        "broker-password", "--reveal")
    assert revealed["value"] == mine.decode()
    assert _cat(gateway, "/run/credentials/broker-password") == (0, mine.decode())


def test_a_gateway_without_a_good_attestation_is_given_nothing(world: World,
                                                              gateway: Agent,
                                                              ops: Operator) -> None:
    ops("fleet", "secrets", "set", "minibar", "api-token", stdin="not-for-you")
    board = gateway.board
    # a release signed by the vendor but never published: it boots, and its
    # measurements are none the server knows as good
    build = world.build("9.9.0", 1)
    board.write("kernel_b", build.kernel)
    board.write("rootfs_b", build.rootfs)
    env = board.read_env()
    assert env is not None
    board.write_env(stage_try(env, "b"))
    assert boot(board).slot == "b"
    with gateway._client() as client:
        assert gateway.attest(client) == "failed"
        with pytest.raises(PermissionDenied):
            exchange.exchange(board, client, lambda _: None)
        gateway.secrets(client)  # the agent does not even ask
    assert vault.versions(board) == {}
    assert vault.read(board, "minibar", vault.SECRETS, "api-token") is None


def test_the_escrowed_recovery_key_opens_a_gateway_that_no_longer_boots(
        world: World, gateway: Agent, ops: Operator, tmp_path: Path) -> None:
    board = gateway.board
    assert recovery.pending(board) is None  # the agent escrowed it when it enrolled
    (board.data_dir / "note").write_text("the hotel's data")
    key = ops.json("fleet", "recovery-key", "gw-1")["recovery_key"]
    board.write("kernel_a", b"garbage")  # the chain is gone
    assert boot(board).refused_stage == "bl2" and not volume.unlocked(board)
    (tmp_path / "key").write_text(key)
    ops("device", "recover", "--device", str(board.root), "--key-file",
        str(tmp_path / "key"))
    assert (board.data_dir / "note").read_text() == "the hotel's data"
    status = ops.json("device", "status", "--device", str(board.root))
    assert status["data_area"]["unlocked"] is True
    assert status["data_area"]["recovery_key"] == "escrowed"
    assert status["data_area"]["key_sealed"] == "under the HUK"
    said = ops("device", "status", "--device", str(board.root)).stdout
    assert "data area: unlocked (fscrypt v2" in " ".join(said.split())


def test_the_heartbeat_says_when_the_secrets_changed(world: World, gateway: Agent,
                                                      ops: Operator) -> None:
    ops("fleet", "secrets", "set", "minibar", "api-token", stdin="one")
    gateway.run()
    stamp = gateway.secrets_stamp
    assert stamp is not None and _cat(gateway, "/run/secrets/api-token") == (0, "one")
    with gateway._client() as client:
        assert gateway.heartbeat(client)["secrets"] == stamp  # nothing new: nothing asked
        ops("fleet", "secrets", "set", "minibar", "api-token", stdin="two")
        beat = gateway.heartbeat(client)["secrets"]
        assert beat != stamp  # a rotation: taken at the next heartbeat, not in 12 hours
        gateway.secrets(client, beat)
    assert gateway.secrets_stamp == beat
    assert _cat(gateway, "/run/secrets/api-token") == (0, "two")
