"""Provisioning one gateway: fuses, flash, identity, credentials, a test boot, a record.

Everything that can be checked is checked before the first fuse is burnt
(keys and passphrase, the release, the serial, the device's state): fuses
cannot be unburnt, so nothing irreversible happens on bad input.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from edgeward.board.bootenv import BootEnv
from edgeward.board.virtual import VirtualBoard
from edgeward.device import credentials, identity
from edgeward.device.boot.chain import boot
from edgeward.device.boot.report import BootReport
from edgeward.errors import NotAvailable, ProvisioningError
from edgeward.factory.record import sign_record
from edgeward.factory.station import Factory
from edgeward.files import read_file, write_atomic, write_secret
from edgeward.trust import certs, keys, sealing
from edgeward.trust.manifest import verify_bl2


@dataclass(frozen=True)
class Provisioned:
    serial: str
    device: Path
    certificate_sha384: str
    fuse_hash: str
    record: Path
    boot: BootReport


def escrow_info(serial: str) -> bytes:
    return b"edgeward maintenance credential\x00" + serial.encode()


def provision(factory: Factory, device: Path, serial: str, passphrase: bytes | None,
              now: dt.datetime, server: str | None = None) -> Provisioned:
    if server is not None:
        raise NotAvailable("enrolment with a fleet server (--server) arrives with the fleet "
                           "server; provision without --server for now")
    certs.check_serial(serial)
    if factory.record_path(serial).exists():
        raise ProvisioningError(f"serial {serial} was already provisioned by this factory; "
                                "every gateway needs its own serial")
    if (device / "fuses.bin").exists() and VirtualBoard.open(device).fuses().provisioned:
        raise ProvisioningError(f"device {device} already has burnt fuses; a gateway is "
                                "provisioned once (fuses cannot be unburnt)")
    # Every check that can fail on bad input, before anything irreversible:
    ca_key = factory.key("ca", passphrase)
    station_key = factory.key("station", passphrase)
    ca_cert = factory.ca_cert
    root_hash = keys.key_hash(factory.public_key("boot-root"))
    escrow = factory.public_key("escrow")
    release = factory.release
    bl2_image = read_file(release.bl2, "BL2 image")
    kernel_image = read_file(release.kernel, "kernel bundle")
    bl2 = verify_bl2(bl2_image, root_hash, 0)

    board = VirtualBoard.create(device)
    board.burn("root_key_hash", root_hash)
    board.burn("huk", os.urandom(32))
    board.advance_security_version(bl2.security_version)
    board.burn("debug_disable", b"\x01")
    board.write("bl2", bl2_image)
    board.write("kernel_a", kernel_image)
    board.write("rootfs_a", release.rootfs)
    board.write_env(BootEnv())

    csr = certs.load_csr(identity.make_key_and_csr(board, serial))
    cert = certs.issue(ca_key, ca_cert, csr, serial, factory.model, now)
    user, password = credentials.make_maintenance(board, serial)
    write_secret(factory.root / "escrow" / f"{serial}.sealed",
                 sealing.seal(escrow, f"{user}:{password}".encode(), escrow_info(serial)))

    report = boot(board)  # the factory's test boot; also the device's first boot
    if report.verdict != "booted":
        raise ProvisioningError(f"factory test boot of {serial} refused at "
                                f"{report.refused_stage}: {report.reason}")
    fuses = board.fuses()
    record = {
        "type": "manufacturing-record", "serial": serial, "model": factory.model,
        "manufacturer": str(factory.config["manufacturer"]),
        "certificate_sha384": certs.fingerprint(cert), "fuse_hash": fuses.public_hash(),
        "root_key_hash": fuses.root_key_hash.hex(),
        "security_version": fuses.security_version,
        "release": report.versions, "provisioned_at": now.isoformat(),
    }
    signed = sign_record(record, station_key)
    identity.install(board, certs.cert_pem(cert), signed)
    write_atomic(factory.record_path(serial), signed)
    return Provisioned(serial, device, certs.fingerprint(cert), fuses.public_hash(),
                       factory.record_path(serial), report)
