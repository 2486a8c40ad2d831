"""The encrypted data area, attacked as a thief and a tamperer would.

Real ext4 images with fscrypt v2, loop-mounted, real boots of provisioned
gateways. The attacker has the flash (every file under ``DEV/flash``) but not
the fuses; or changes the chain; or moves the flash into another board.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from edgeward.board import mounts
from edgeward.board.virtual import VirtualBoard
from edgeward.demo_secrets import scan
from edgeward.device import keyring
from edgeward.device.apps import store
from edgeward.device.apps.sandbox import AppUser
from edgeward.device.boot.chain import boot
from edgeward.device.secrets import vault
from edgeward.device.storage import fscrypt, recovery, volume
from edgeward.errors import InputError, IntegrityError, StateError
from edgeward.factory import station
from edgeward.factory.provision import provision
from edgeward.factory.station import Factory
from edgeward.trust.wrap import derive_directory_key, directory_key_identifier
from tests.conftest import NOW
from tests.device.apps_side import build, sideload

CODE, CONFIG, SECRET, STATE = (b"MARKER-APP-CODE-7f3a", b"MARKER-APP-CONFIG-91c2",
                               b"MARKER-APP-SECRET-5d0e", b"MARKER-AGENT-STATE-c4b8")
ROOT = AppUser(0, 0)  # the files' owner does not matter to what lies on the flash


def _fill(board: VirtualBoard, tmp: Path) -> dict[str, bytes]:
    """An app with known plaintext in its code, config and secret; the agent's state too."""
    image = build(tmp, "minibar", {"bin/serve": "#!/bin/sh\necho " + CODE.decode() + "\n"},
                  'credentials = ["broker-password"]\n')
    sideload(board, image, "minibar", "1.0")
    (store.apps_dir(board) / "minibar" / "data").mkdir(exist_ok=True)
    (store.apps_dir(board) / "minibar" / "data" / "config.toml").write_bytes(CONFIG)
    vault.put(board, "minibar", ROOT, vault.SECRETS, "api-token", SECRET)
    (board.data_dir / "edgeward").mkdir(exist_ok=True)
    (board.data_dir / "edgeward" / "state.json").write_bytes(STATE)
    volume_key = keyring.recall(board, keyring.DATA_VOLUME)
    assert volume_key is not None
    return {"volume": volume_key,
            "system": derive_directory_key(volume_key, "system"),
            "app": derive_directory_key(volume_key, "app:minibar")}


def test_every_folder_is_encrypted_under_its_own_key(gateway: VirtualBoard) -> None:
    volume_key = keyring.recall(gateway, keyring.DATA_VOLUME)
    assert volume_key is not None
    a, b = volume.app_dir(gateway, "minibar"), volume.app_dir(gateway, "hvac")
    seen = {}
    for folder, label in ((gateway.data_dir, "system"), (a, "app:minibar"),
                          (b, "app:hvac")):
        policy = fscrypt.get_policy(folder)
        assert policy is not None and policy.standard  # v2, AES-256-XTS/CTS, padded names
        assert policy.identifier == directory_key_identifier(
            derive_directory_key(volume_key, label))
        seen[label] = policy.identifier
    assert len(set(seen.values())) == 3
    assert fscrypt.get_policy(gateway.data_mount) is None  # the root holds only folders
    assert volume.describe(gateway)["app_folders"] == {"hvac": True, "minibar": True}


def test_one_apps_key_opens_nothing_of_anothers(gateway: VirtualBoard) -> None:
    volume_key = keyring.recall(gateway, keyring.DATA_VOLUME)
    assert volume_key is not None
    for app in ("minibar", "hvac"):
        (volume.app_dir(gateway, app) / "config").write_text(f"{app} config")
    gateway.power_off()  # every key leaves the kernel with the mount
    volume._mount(gateway)  # mounted, and only minibar's key given
    fscrypt.add_key(gateway.data_mount, derive_directory_key(volume_key, "app:minibar"))
    apps = gateway.data_mount / "apps"
    assert (apps / "minibar" / "config").read_text() == "minibar config"
    hidden = os.listdir(apps / "hvac")
    assert hidden != ["config"]  # names are ciphertext too
    with pytest.raises(OSError) as refused:
        (apps / "hvac" / hidden[0]).read_bytes()
    assert refused.value.errno == errno.ENOKEY
    assert "edgeward" not in os.listdir(gateway.data_mount / "system")


def test_a_stolen_flash_yields_nothing(gateway: VirtualBoard, tmp_path: Path) -> None:
    keys = _fill(gateway, tmp_path)
    assert (store.apps_dir(gateway) / "minibar" / "1.0" / "root" / "bin" / "serve"
            ).read_bytes().count(CODE) == 1  # the markers are really there, in plaintext
    control = b"MARKER-CONTROL-PLAIN-e1a9"  # in the volume's one unencrypted folder
    (gateway.data_mount / "apps" / ".control").write_bytes(control)
    gateway.power_off()
    markers = {"code": CODE, "config": CONFIG, "secret": SECRET, "state": STATE,
               "a name": b"api-token", "control": control,
               **{f"{name} key": key for name, key in keys.items()},
               **{f"{name} key (half)": key[:16] for name, key in keys.items()}}
    read, found = scan(gateway.root / "flash", markers)  # everything a thief reads
    assert read > 1 << 20
    assert found == ["control"]  # the scan sees the data area; nothing else is readable
    # the data area mounted by hand, without keys: names and contents are ciphertext
    volume._mount(gateway)
    try:
        assert sorted(os.listdir(gateway.data_mount / "apps")) == [".control", "minibar"]
        inside = os.listdir(gateway.data_mount / "apps" / "minibar")
        assert "data" not in inside and "secrets" not in inside
    finally:
        gateway.power_off()


def test_a_tampered_chain_never_releases_the_key(gateway: VirtualBoard) -> None:
    rootfs = gateway.partition_path("rootfs_a")
    data = bytearray(rootfs.read_bytes())
    data[4096] ^= 1
    rootfs.write_bytes(bytes(data))
    report = boot(gateway)
    assert report.refused_stage == "kernel"
    assert not volume.unlocked(gateway) and not mounts.mounts_under(gateway.data_mount)
    assert keyring.recall(gateway, keyring.DATA_VOLUME) is None
    with pytest.raises(StateError, match="data area is locked"):
        gateway.data_dir  # noqa: B018


def test_a_foreign_kernel_never_releases_the_key(gateway: VirtualBoard, tmp_path: Path
                                                 ) -> None:
    station.init(tmp_path / "other", "ew-gw1", "Other Ltd", "1.0.0", 1, None, NOW)
    foreign = station.open_factory(tmp_path / "other")  # another vendor's OS, signed
    gateway.write("kernel_a", foreign.release.kernel.read_bytes())
    assert boot(gateway).refused_stage == "bl2"
    assert not volume.unlocked(gateway)


def test_the_flash_in_another_board_never_opens(factory: Factory, tmp_path: Path) -> None:
    provision(factory, tmp_path / "gw-a", "gw-a", None, NOW)
    provision(factory, tmp_path / "gw-b", "gw-b", None, NOW)
    a, b = VirtualBoard.open(tmp_path / "gw-a"), VirtualBoard.open(tmp_path / "gw-b")
    try:
        (a.data_dir / "note").write_bytes(CONFIG)
        a.power_off()
        b.power_off()
        shutil.rmtree(b.root / "flash")
        shutil.copytree(a.root / "flash", b.root / "flash")  # same product, same root key
        report = boot(b)
        assert report.refused_stage == "os" and "do not open" in report.reason
        assert not volume.unlocked(b) and b.huk_locked()
        assert boot(a).verdict == "booted"  # in its own board it opens, as ever
        assert (a.data_dir / "note").read_bytes() == CONFIG
    finally:
        a.power_off()
        b.power_off()


def test_a_wrong_volume_key_is_refused_and_leaves_it_locked(gateway: VirtualBoard) -> None:
    gateway.power_off()
    with pytest.raises(IntegrityError, match="not encrypted under this volume key"):
        volume.unlock(gateway, os.urandom(32))
    assert not volume.unlocked(gateway)


def test_a_boot_cut_between_mount_and_key_is_still_locked(gateway: VirtualBoard) -> None:
    """A power cut (on the virtual board, a killed process) after the data area was
    mounted but before its key was given leaves it mounted and sealed: locked, and
    ``device status`` says so instead of failing on the sealed folder."""
    assert volume.unlocked(gateway)
    gateway.power_off()
    mounts.mount(gateway.data_partition, gateway.data_mount, "ext4", volume.MOUNT_OPTIONS)
    try:
        assert os.path.ismount(gateway.data_mount)
        assert not volume.unlocked(gateway)
        assert volume.describe(gateway)["unlocked"] is False
    finally:
        gateway.power_off()


def test_the_recovery_key_opens_the_data_area_without_a_verified_boot(
        gateway: VirtualBoard, tmp_path: Path) -> None:
    key = recovery.pending(gateway)
    assert key is not None and len(key) == 39  # eight groups of four, not yet escrowed
    (gateway.data_dir / "note").write_bytes(CONFIG)
    gateway.write("kernel_a", b"not a kernel")  # the chain is gone
    assert boot(gateway).refused_stage == "bl2" and not volume.unlocked(gateway)
    with pytest.raises(InputError, match="not a recovery key"):
        recovery.recover(gateway, "1234")
    wrong = "-".join(["AAAA"] * 8)
    with pytest.raises(IntegrityError, match="does not open"):
        recovery.recover(gateway, wrong)
    assert not volume.unlocked(gateway)
    recovery.recover(gateway, key.lower())  # as typed by a person
    assert (gateway.data_dir / "note").read_bytes() == CONFIG
    assert keyring.recall(gateway, keyring.IDENTITY) is None  # the identity stays sealed


def test_an_escrowed_recovery_key_leaves_the_gateway(gateway: VirtualBoard) -> None:
    key = recovery.pending(gateway)
    assert key is not None
    recovery.escrowed(gateway, "-".join(["AAAA"] * 8))  # not the one it holds: kept
    assert recovery.pending(gateway) == key
    recovery.escrowed(gateway, key)
    assert recovery.pending(gateway) is None


def test_a_data_area_is_formatted_once(gateway: VirtualBoard) -> None:
    with pytest.raises(StateError, match="formatted once"):
        volume.format_volume(gateway, os.urandom(32))


def test_an_app_folder_not_under_its_own_key_is_refused(gateway: VirtualBoard) -> None:
    plain = gateway.data_mount / "apps" / "intruder"
    plain.mkdir()  # made beside the agent, without a policy: never used as an app's
    with pytest.raises(IntegrityError, match="not encrypted under intruder's key"):
        volume.app_dir(gateway, "intruder")
    volume.app_dir(gateway, "minibar")
    os.rename(gateway.data_mount / "apps" / "minibar", gateway.data_mount / "apps" / "hvac")
    with pytest.raises(IntegrityError, match="hvac's key"):  # another app's folder
        volume.app_dir(gateway, "hvac")
