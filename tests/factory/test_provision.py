"""Factory init and provisioning: keys, identity made on the device, fuses, records."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device import credentials, identity
from edgeward.errors import KeyFileError, NotAvailable, ProvisioningError
from edgeward.factory import station
from edgeward.factory.provision import escrow_info, provision
from edgeward.factory.record import verify_record
from edgeward.trust import certs, keys, sealing
from tests.conftest import NOW, require_tool


def test_key_files_are_private(factory: station.Factory, gateway: VirtualBoard) -> None:
    secrets = [*list((factory.root / "keys").glob("*.key")), identity.key_path(gateway)]
    secrets += list((gateway.data_dir / "credentials").iterdir())
    assert len(secrets) >= 6
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def test_identity_key_never_leaves_the_device(factory: station.Factory,
                                              gateway: VirtualBoard) -> None:
    key_pem = identity.key_path(gateway).read_bytes()
    body = b"".join(key_pem.splitlines()[1:-1])[:64]
    for path in factory.root.rglob("*"):
        if path.is_file():
            assert body not in b"".join(path.read_bytes().splitlines()), path
    cert = identity.certificate(gateway)
    assert certs.serial_of(cert) == "gw-0001"
    assert certs.verify_device_cert(cert, [factory.ca_cert], NOW) == "gw-0001"
    assert keys.public_der(certs.public_key_of(cert)) == keys.public_der(
        identity.identity_key(gateway).public_key())


def test_manufacturing_record_is_signed_and_matches_the_device(
        factory: station.Factory, gateway: VirtualBoard) -> None:
    record = verify_record(factory.record_path("gw-0001").read_bytes(), factory.station_cert,
                           factory.ca_cert, NOW)
    assert record["serial"] == "gw-0001" and record["model"] == "ew-gw1"
    assert record["certificate_sha384"] == certs.fingerprint(identity.certificate(gateway))
    assert record["fuse_hash"] == gateway.fuses().public_hash()
    assert identity.record_path(gateway).read_bytes() == factory.record_path("gw-0001").read_bytes()
    forged = factory.record_path("gw-0001").read_bytes().replace(b'"payload":"', b'"payload":"e')
    with pytest.raises(Exception) as caught:
        verify_record(forged, factory.station_cert, factory.ca_cert, NOW)
    assert "manufacturing record" in str(caught.value)


def test_fuses_are_burnt_with_debug_disabled(factory: station.Factory,
                                             gateway: VirtualBoard) -> None:
    state = gateway.fuses()
    assert state.root_key_hash == keys.key_hash(factory.public_key("boot-root"))
    assert state.debug_disable and state.huk_burnt and state.security_version == 1
    assert state.locked == {"root_key_hash", "huk", "debug_disable"}


def test_second_provisioning_of_a_burnt_device_is_refused(
        factory: station.Factory, gateway: VirtualBoard) -> None:
    before = (gateway.root / "fuses.bin").read_bytes()
    with pytest.raises(ProvisioningError, match="already has burnt fuses"):
        provision(factory, gateway.root, "gw-0009", None, NOW)
    assert (gateway.root / "fuses.bin").read_bytes() == before
    assert not factory.record_path("gw-0009").exists()


def test_a_serial_is_provisioned_once(factory: station.Factory, gateway: VirtualBoard,
                                      tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="already provisioned"):
        provision(factory, tmp_path / "other", "gw-0001", None, NOW)
    assert not (tmp_path / "other").exists()


def test_server_enrolment_is_refused_clearly_before_anything_is_burnt(
        factory: station.Factory, tmp_path: Path) -> None:
    with pytest.raises(NotAvailable, match="fleet server"):
        provision(factory, tmp_path / "d", "gw-7", None, NOW, server="https://fleet.example")
    assert not (tmp_path / "d").exists()


def test_per_device_credentials_are_unique_and_never_in_plain_text(
        factory: station.Factory, tmp_path: Path) -> None:
    escrow_key = factory.key("escrow", None)
    seen = set()
    for serial in ("u-1", "u-2", "u-3"):
        provision(factory, tmp_path / serial, serial, None, NOW)
        board = VirtualBoard.open(tmp_path / serial)
        sealed = (factory.root / "escrow" / f"{serial}.sealed").read_bytes()
        user, password = sealing.unseal(escrow_key, sealed, escrow_info(serial)).decode().split(
            ":", 1)
        assert credentials.check_maintenance(board, user, password)
        assert not credentials.check_maintenance(board, user, password + "x")
        for path in (tmp_path / serial).rglob("*"):
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path
        seen.add(password)
    assert len(seen) == 3


def test_rootfs_has_no_usable_password_and_no_console_login(factory: station.Factory) -> None:
    require_tool("unsquashfs")
    image = factory.release.rootfs

    def cat(name: str) -> str:
        out = subprocess.run(["unsquashfs", "-cat", str(image), name], check=True,
                             capture_output=True)
        return out.stdout.decode()

    for line in cat("etc/shadow").splitlines():
        assert line.split(":")[1] in ("*", "!"), line
    assert "getty" not in cat("etc/inittab")


def test_offline_keys_with_a_passphrase(tmp_path: Path) -> None:
    require_tool("mksquashfs")
    made = station.init(tmp_path / "f", "ew-gw1", "P Ltd", "1.0.0", 1, b"correct horse", NOW)
    assert b"ENCRYPTED" in (made.root / "keys" / "ca.key").read_bytes()
    with pytest.raises(KeyFileError, match="passphrase is needed"):
        provision(made, tmp_path / "d", "p-1", None, NOW)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        provision(made, tmp_path / "d", "p-1", b"wrong", NOW)
    assert not (tmp_path / "d").exists()  # nothing burnt on a wrong passphrase
    provision(made, tmp_path / "d", "p-1", b"correct horse", NOW)


def test_factory_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x").write_text("x")
    with pytest.raises(ProvisioningError, match="not empty"):
        station.init(tmp_path / "f", "ew-gw1", "X", "1.0.0", 1, None, NOW)
