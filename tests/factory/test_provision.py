"""Factory init and provisioning: keys, identity made on the device, fuses, records."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from edgeward.board.virtual import VirtualBoard
from edgeward.device import credentials, identity
from edgeward.errors import (
    CertificateError,
    InputError,
    KeyFileError,
    ProvisioningError,
    ToolError,
)
from edgeward.factory import station
from edgeward.factory.provision import escrow_info, provision
from edgeward.factory.record import verify_record
from edgeward.trust import certs, keys, sealing
from tests.conftest import NOW, require_tool


def test_key_files_are_private(factory: station.Factory, gateway: VirtualBoard) -> None:
    secrets = [factory.key_path(name) for name in station.KEYS]
    secrets += list((gateway.sealed_dir).iterdir())
    secrets += list((gateway.data_dir / "credentials").iterdir())
    assert len(secrets) >= 8
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def test_offline_keys_are_apart_from_what_provisioning_needs(factory: station.Factory) -> None:
    assert {p.stem for p in (factory.root / "offline").glob("*.key")} == set(station.OFFLINE)
    assert {p.stem for p in (factory.root / "keys").glob("*.key")} == {"ca", "station"}


def test_identity_key_never_leaves_the_device_and_is_sealed_in_flash(
        factory: station.Factory, gateway: VirtualBoard) -> None:
    key_pem = keys.private_pem(identity.identity_key(gateway))  # opened by the verified boot
    body = b"".join(key_pem.splitlines()[1:-1])[:64]
    for path in factory.root.rglob("*"):
        if path.is_file():
            assert body not in b"".join(path.read_bytes().splitlines()), path
    for path in (gateway.root / "flash").rglob("*"):
        if path.is_file():  # a dump of the flash holds no private key in the clear
            assert b"PRIVATE KEY" not in path.read_bytes(), path
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


def test_keys_with_a_passphrase(tmp_path: Path) -> None:
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


# --- nothing is burnt on input that could be checked first ---------------------------


def _nothing_burnt(device: Path) -> bool:
    return not (device / "fuses.bin").exists()


def test_corrupt_factory_config_is_refused(factory: station.Factory, tmp_path: Path) -> None:
    for content in (b"{", b"{}", b'{"model": 5}'):
        (factory.root / "factory.json").write_bytes(content)
        with pytest.raises(InputError, match="factory config"):
            provision(station.open_factory(factory.root), tmp_path / "d", "x-1", None, NOW)
        assert _nothing_burnt(tmp_path / "d")


def test_missing_or_corrupt_release_is_refused_before_burning(
        factory: station.Factory, tmp_path: Path) -> None:
    rootfs = factory.release.rootfs
    original = rootfs.read_bytes()
    data = bytearray(original)
    data[100] ^= 1
    rootfs.write_bytes(bytes(data))
    with pytest.raises(ProvisioningError, match=r"release does not boot.*nothing was burnt"):
        provision(factory, tmp_path / "d", "x-1", None, NOW)
    assert _nothing_burnt(tmp_path / "d")
    rootfs.unlink()
    with pytest.raises(InputError, match="does not exist"):
        provision(factory, tmp_path / "d", "x-1", None, NOW)
    assert _nothing_burnt(tmp_path / "d")
    assert not (factory.root / "escrow" / "x-1.sealed").exists()


def test_a_ca_certificate_that_does_not_match_the_ca_key_is_refused(
        factory: station.Factory, tmp_path: Path) -> None:
    other = certs.make_ca(keys.generate(), "Someone Else", NOW)
    (factory.root / "ca.pem").write_bytes(certs.cert_pem(other))
    with pytest.raises(ProvisioningError, match="CA key does not match its certificate"):
        provision(factory, tmp_path / "d", "x-1", None, NOW)
    assert _nothing_burnt(tmp_path / "d")


def test_a_directory_that_is_not_a_blank_gateway_is_refused(
        factory: station.Factory, tmp_path: Path) -> None:
    target = tmp_path / "shared"
    target.mkdir(mode=0o755)
    (target / "notes.txt").write_text("not a gateway")
    with pytest.raises(ProvisioningError, match="not a blank gateway"):
        provision(factory, target, "x-1", None, NOW)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and _nothing_burnt(target)


def test_init_without_mksquashfs_leaves_nothing(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ToolError, match="mksquashfs"):
        station.init(tmp_path / "f", "ew-gw1", "X", "1.0.0", 1, None, NOW)
    assert list(tmp_path.iterdir()) == []


def test_a_record_signed_by_a_device_certificate_is_refused(
        factory: station.Factory, gateway: VirtualBoard) -> None:
    """Any certificate from the CA is not enough: only a station's signs records."""
    from edgeward.factory.record import sign_record
    from edgeward.trust.canonical import load_object

    record = verify_record(factory.record_path("gw-0001").read_bytes(), factory.station_cert,
                           factory.ca_cert, NOW)
    forged = sign_record({**record, "serial": "gw-9999"}, identity.identity_key(gateway))
    with pytest.raises(CertificateError, match="not a factory station certificate"):
        verify_record(forged, identity.certificate(gateway), factory.ca_cert, NOW)
    assert load_object(forged, "x")  # well-formed: refused for who signed it, nothing else
