"""Provisioning one gateway: fuses, flash, identity, credentials, a test boot, a record.

Fuses cannot be unburnt, so everything that can fail on bad input fails
before the first one is: the serial and the device directory, the keys (and
the passphrase) and that each matches its certificate, and the release
itself, which is booted first on a scratch board. Only then is the real board
burnt, flashed, given its identity, and booted.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeward.board.base import policy_partition
from edgeward.board.bootenv import BootEnv
from edgeward.board.virtual import VirtualBoard
from edgeward.device import credentials, identity, keyring
from edgeward.device.agent import Agent, AgentSettings, remember_server_ca
from edgeward.device.boot.chain import boot
from edgeward.device.boot.report import BootReport
from edgeward.device.storage import recovery, sealed, volume
from edgeward.errors import InputError, ProvisioningError
from edgeward.factory.record import sign_record
from edgeward.factory.station import Factory
from edgeward.files import read_file, write_atomic, write_secret
from edgeward.trust import certs, keys, sealing
from edgeward.trust.manifest import peek_kernel_bundle, verify_bl2


@dataclass(frozen=True)
class Provisioned:
    serial: str
    device: Path
    certificate_sha384: str
    fuse_hash: str
    record: Path
    boot: BootReport


@dataclass(frozen=True)
class _Images:
    root_hash: bytes
    security_version: int
    bl2: bytes
    kernel: bytes
    rootfs: Path
    os_security_version: int
    tpm_policy: bytes
    kernel_key: keys.PublicKey


def escrow_info(serial: str) -> bytes:
    return b"edgeward maintenance credential\x00" + serial.encode()


def _check_blank(device: Path) -> None:
    if not device.exists():
        return
    if not device.is_dir():
        raise ProvisioningError(f"{device} exists and is not a directory")
    if (device / "fuses.bin").exists():
        if VirtualBoard.open(device).fuses().provisioned:
            raise ProvisioningError(f"device {device} already has burnt fuses; a gateway is "
                                    "provisioned once (fuses cannot be unburnt)")
        if not (device / "flash" / "data.img").exists():
            return  # a blank board
    elif not any(device.iterdir()):
        return
    raise ProvisioningError(f"{device} exists and is not a blank gateway")


def _check_pair(key: keys.PrivateKey, cert_pem_owner: str, public: keys.PublicKey) -> None:
    if keys.public_der(key.public_key()) != keys.public_der(public):
        raise ProvisioningError(f"the {cert_pem_owner} key does not match its certificate")


def _flash(device: Path, images: _Images, tpm: bool) -> tuple[VirtualBoard, keyring.Kek]:
    """Burn and flash a board; seal its data key. Returns the board and its KEK."""
    board = VirtualBoard.create(device)
    board.burn("root_key_hash", images.root_hash)
    board.burn("huk", os.urandom(32))
    board.advance_security_version(images.security_version)
    board.advance_security_version(images.os_security_version, "os_security_version")
    board.burn("debug_disable", b"\x01")
    board.write("bl2", images.bl2)
    board.write("kernel_a", images.kernel)
    board.write("rootfs_a", images.rootfs)
    board.write(policy_partition("a"), images.tpm_policy)
    board.write_env(BootEnv())
    # the HUK is readable until the first boot locks it
    kek = keyring.derive(board, images.os_security_version)
    volume_key = os.urandom(32)
    if tpm:  # sealed in the TPM instead, to the vendor's approvals of its releases
        board.add_tpm()
        sealed.seal_volume_key(board, volume_key, images.kernel_key,
                               images.os_security_version)
    else:
        keyring.seal(board, kek, keyring.DATA_VOLUME, volume_key)
    volume.format_volume(board, volume_key)
    recovery.make(board, volume_key)  # escrowed by the agent to the fleet server
    return board, kek


def _rehearse(images: _Images, serial: str, tpm: bool) -> None:
    """Provision and boot a scratch board: a release that does not boot burns nothing."""
    with tempfile.TemporaryDirectory(prefix="edgeward-rehearsal-") as tmp:
        scratch = Path(tmp) / "board"
        try:
            board, kek = _flash(scratch, images, tpm)
            identity.make_key_and_csr(board, kek, serial)
            report = boot(board)
        finally:
            VirtualBoard(scratch).power_off()  # its data area was mounted
        if report.verdict != "booted":
            raise ProvisioningError(f"the factory release does not boot (refused at "
                                    f"{report.refused_stage}: {report.reason}); nothing was "
                                    "burnt")


def provision(factory: Factory, device: Path, serial: str, passphrase: bytes | None,
              now: dt.datetime, tpm: bool = False) -> Provisioned:
    certs.check_serial(serial)
    if factory.record_path(serial).exists():
        raise ProvisioningError(f"serial {serial} was already provisioned by this factory; "
                                "every gateway needs its own serial")
    _check_blank(device)
    ca_key, ca_cert = factory.key("ca", passphrase), factory.ca_cert
    station_key = factory.key("station", passphrase)
    _check_pair(ca_key, "CA", certs.public_key_of(ca_cert))
    _check_pair(station_key, "station", certs.public_key_of(factory.station_cert))
    escrow = factory.public_key("escrow")
    release = factory.release
    root_hash = keys.key_hash(factory.public_key("boot-root"))
    if not release.rootfs.is_file():
        raise InputError(f"rootfs image {release.rootfs} does not exist")
    bl2_image = read_file(release.bl2, "BL2 image")
    kernel_image = read_file(release.kernel, "kernel bundle")
    images = _Images(root_hash, verify_bl2(bl2_image, root_hash, 0).security_version,
                     bl2_image, kernel_image, release.rootfs,
                     peek_kernel_bundle(kernel_image).security_version,
                     read_file(release.tpm_policy, "approved TPM policy") if tpm else b"",
                     factory.public_key("kernel"))
    _rehearse(images, serial, tpm)

    # From here on the board is changed for good.
    board, kek = _flash(device, images, tpm)
    csr = certs.load_csr(identity.make_key_and_csr(board, kek, serial))
    cert = certs.issue(ca_key, ca_cert, csr, serial, factory.model, now)
    certs.verify_device_cert(cert, [ca_cert], now)
    user, password = credentials.make_maintenance(board, serial)
    report = boot(board)  # the factory's test boot; also the device's first boot
    if report.verdict != "booted":
        raise ProvisioningError(f"factory test boot of {serial} refused at "
                                f"{report.refused_stage}: {report.reason}")
    write_secret(factory.root / "escrow" / f"{serial}.sealed",
                 sealing.seal(escrow, f"{user}:{password}".encode(), escrow_info(serial)))
    fuses = board.fuses()
    record = {
        "type": "manufacturing-record", "serial": serial, "model": factory.model,
        "manufacturer": factory.manufacturer,
        "certificate_sha384": certs.fingerprint(cert), "fuse_hash": fuses.public_hash(),
        "root_key_hash": fuses.root_key_hash.hex(),
        "security_version": fuses.security_version,
        "os_security_version": fuses.os_security_version,
        "release": report.versions, "provisioned_at": now.isoformat(),
    }
    signed = sign_record(record, station_key)
    identity.install(board, certs.cert_pem(cert), signed, certs.cert_pem(factory.station_cert))
    write_atomic(factory.record_path(serial), signed)
    return Provisioned(serial, device, certs.fingerprint(cert), fuses.public_hash(),
                       factory.record_path(serial), report)


def enrol(device: Path, server: str, server_ca: Path) -> str:
    """Enrol a freshly provisioned gateway with the fleet server, at the factory.

    The gateway itself does it (its agent, once: enrol, attest, heartbeat) over
    mutual TLS with the identity the test boot opened; returns the verdict.
    """
    board = VirtualBoard.open(device)
    remember_server_ca(board, server_ca)
    settings = AgentSettings(server, once=True, backoff_base=0.2, backoff_cap=2.0)
    return Agent(board, settings).run().attestation
