"""Secrets and per-device credentials on the gateway, as the apps see them: each app
reads its own inside its sandbox and nothing of its neighbour's.

Real sandboxes (bubblewrap, Landlock, seccomp) on an encrypted data area; deliveries
sealed with real HPKE to a real P-384 identity key, as the fleet server seals them.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device.apps import runner, store, users
from edgeward.device.secrets import sync, vault
from edgeward.trust import keys, sealing
from edgeward.trust.secretbox import secret_info
from tests.device.apps_side import install
from tests.device.sandboxing import need_root

PROBE = {"bin/probe": '#!/bin/sh\nexec /bin/sh -c "$1"\n'}
MANIFEST = '[commands.probe]\nexec = "bin/probe"\n'
SERIAL = "gw-0001"
KEY = keys.generate(keys.Algorithm.ECDSA_P384)  # the gateway's identity key


def _box(app: str, name: str, version: int, value: bytes, serial: str = SERIAL,
         **kw: Any) -> dict[str, Any]:
    info = secret_info(serial, kw.get("for_app", app), kw.get("for_name", name),
                       kw.get("for_version", version))
    sealed = sealing.seal(KEY.public_key(), value, info)
    return {"app": app, "name": name, "version": version,
            "sealed": base64.b64encode(sealed).decode()}


def _run(board: VirtualBoard, app: str, script: str) -> tuple[int, str]:
    done = runner.run(board, app, "probe", [script])
    return done.returncode, done.stdout.decode() + done.stderr.decode()


@pytest.fixture
def two_apps(board: VirtualBoard) -> VirtualBoard:
    need_root()
    install(board, "minibar", PROBE, 'credentials = ["broker-password"]\n' + MANIFEST)
    install(board, "hvac", PROBE, MANIFEST)
    return board


def test_each_app_reads_its_own_secret_and_nothing_of_its_neighbours(
        two_apps: VirtualBoard) -> None:
    board = two_apps
    done = sync.apply(board, SERIAL, KEY, [_box("minibar", "api-token", 1, b"mb-s3cret"),
                                          _box("hvac", "api-token", 1, b"hv-s3cret")])
    assert sorted(done.added) == [("hvac", "api-token"), ("minibar", "api-token")]
    code, out = _run(board, "minibar", 'cat "$EDGEWARD_SECRETS/api-token"')
    assert (code, out) == (0, "mb-s3cret")
    code, out = _run(board, "hvac", "cat /run/secrets/api-token")
    assert (code, out) == (0, "hv-s3cret")
    theirs = vault.folder(board, "minibar", vault.SECRETS) / "api-token"
    code, out = _run(board, "hvac", f"cat {theirs}; ls {store.apps_dir(board) / 'minibar'}")
    assert code != 0 and "mb-s3cret" not in out
    code, out = _run(board, "hvac", f"ls {store.apps_dir(board) / 'minibar' / 'data'}")
    assert code != 0
    stat = os.stat(theirs)  # on the host too: minibar's user's alone
    assert (stat.st_uid, stat.st_mode & 0o777) == (users.user_for(board, "minibar").uid,
                                                    0o400)
    assert os.stat(theirs.parent).st_mode & 0o777 == 0o500


def test_rotation_replaces_revocation_removes_and_a_box_for_elsewhere_is_refused(
        two_apps: VirtualBoard) -> None:
    board = two_apps
    sync.apply(board, SERIAL, KEY, [_box("minibar", "api-token", 1, b"one")])
    same = sync.apply(board, SERIAL, KEY, [_box("minibar", "api-token", 1, b"one")])
    assert not same.apps  # the same version again: nothing to do, nobody restarted
    rotated = sync.apply(board, SERIAL, KEY, [_box("minibar", "api-token", 2, b"two")])
    assert rotated.rotated == [("minibar", "api-token")] and rotated.apps == {"minibar"}
    assert _run(board, "minibar", "cat /run/secrets/api-token") == (0, "two")
    forged = [_box("minibar", "api-token", 3, b"three", for_app="hvac"),  # hvac's box
              _box("minibar", "db", 1, b"x", serial="gw-0002"),  # another gateway's
              _box("minibar", "old", 4, b"x", for_version=3),  # a replayed version
              {"app": "minibar", "name": "../../etc/x", "version": 1, "sealed": ""},
              {"app": "minibar", "name": "x", "version": 1, "sealed": "%%%"}]
    refused = sync.apply(board, SERIAL, KEY,
                         [_box("minibar", "api-token", 2, b"two"), *forged])
    assert len(refused.refused) == 5 and not refused.apps
    assert _run(board, "minibar", "cat /run/secrets/api-token") == (0, "two")
    assert vault.read(board, "minibar", vault.SECRETS, "db") is None
    revoked = sync.apply(board, SERIAL, KEY, [])
    assert revoked.revoked == [("minibar", "api-token")]
    assert vault.versions(board) == {}
    code, _ = _run(board, "minibar", "cat /run/secrets/api-token")
    assert code != 0


def test_a_secret_for_an_app_not_installed_waits(two_apps: VirtualBoard) -> None:
    box = _box("weather", "key", 1, b"w")
    assert not sync.apply(two_apps, SERIAL, KEY, [box]).apps
    assert vault.versions(two_apps) == {}  # taken when the app is installed


def test_a_per_device_credential_is_made_once_reported_until_taken_and_shown_to_its_app(
        two_apps: VirtualBoard) -> None:
    board = two_apps
    reported: list[tuple[str, str, str]] = []

    def unreachable(app: str, name: str, value: str) -> None:
        raise OSError("server away")

    with pytest.raises(OSError):
        sync.ensure_credentials(board, unreachable)
    made = vault.read(board, "minibar", vault.CREDENTIALS, "broker-password")
    assert made is not None and len(made) >= 32
    assert sync.ensure_credentials(board, lambda *a: reported.append(a)) == []
    assert reported == [("minibar", "broker-password", made.decode())]  # the same value
    assert sync.ensure_credentials(board, lambda *a: reported.append(a)) == []
    assert len(reported) == 1  # taken: not sent again
    code, out = _run(board, "minibar", 'cat "$EDGEWARD_CREDENTIALS/broker-password"')
    assert (code, out) == (0, made.decode())
    code, _ = _run(board, "hvac", "ls /run/credentials")
    assert code != 0  # hvac asked for none: it has no such folder


def test_an_app_removed_and_installed_again_gets_its_secrets_again(
        two_apps: VirtualBoard) -> None:
    board = two_apps
    delivery = [_box("minibar", "api-token", 1, b"one")]
    sync.apply(board, SERIAL, KEY, delivery)
    store.remove(board, "minibar")
    assert not sync.apply(board, SERIAL, KEY, delivery).apps  # not installed: waits
    install(board, "minibar", PROBE, MANIFEST, version="1.1")
    assert sync.apply(board, SERIAL, KEY, delivery).added == [("minibar", "api-token")]
    assert _run(board, "minibar", "cat /run/secrets/api-token") == (0, "one")
