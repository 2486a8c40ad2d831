"""A factory directory: the OEM's keys, its CA and its golden OS release.

::

    DIR/factory.json              model, manufacturer, key ids (no secrets)
    DIR/keys/{ca,station}.key     what provisioning needs (0600, in 0700)
    DIR/offline/*.key             boot-root, kernel, escrow: provisioning never needs
                                  them; move this folder to offline storage (an HSM)
    DIR/keys/*.pub                every public key
    DIR/ca.pem, DIR/station.pem   the manufacturer CA and the station's certificate
    DIR/release/                  the signed BL2, kernel bundle, rootfs, known-good.json
    DIR/records/<serial>.json     signed manufacturing records
    DIR/escrow/<serial>.sealed    per-device credentials, sealed to the escrow key
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from edgeward.errors import InputError, ProvisioningError
from edgeward.files import load_private_key, private_dir, read_file, save_private_key, write_atomic
from edgeward.release.osimage import OsRelease, build_release
from edgeward.trust import certs, keys
from edgeward.trust.canonical import Fields, canonical, load_object

KEYS = {
    "boot-root": keys.Algorithm.ECDSA_P384,  # signs BL2; its hash is fused
    "kernel": keys.Algorithm.ECDSA_P384,     # signs kernel bundles; embedded in BL2
    "ca": keys.Algorithm.ECDSA_P384,         # manufacturer CA
    "station": keys.Algorithm.ED25519,       # signs manufacturing records
    "escrow": keys.Algorithm.ECDSA_P384,     # opens sealed per-device credentials
}
OFFLINE = frozenset({"boot-root", "kernel", "escrow"})
CONFIG_FIELDS = {"model", "manufacturer", "created", "passphrase_protected", "release", "keys"}


@dataclass(frozen=True)
class Factory:
    root: Path
    model: str
    manufacturer: str

    @property
    def release(self) -> OsRelease:
        return OsRelease(self.root / "release")

    def key_path(self, name: str) -> Path:
        return self.root / ("offline" if name in OFFLINE else "keys") / f"{name}.key"

    def key(self, name: str, passphrase: bytes | None) -> keys.PrivateKey:
        return load_private_key(self.key_path(name), passphrase, f"{name} key")

    def public_key(self, name: str) -> keys.PublicKey:
        return keys.load_public(read_file(self.root / "keys" / f"{name}.pub", f"{name} key"))

    @property
    def ca_cert(self) -> x509.Certificate:
        return certs.load_cert(read_file(self.root / "ca.pem", "CA certificate"))

    @property
    def station_cert(self) -> x509.Certificate:
        return certs.load_cert(read_file(self.root / "station.pem", "station certificate"))

    def record_path(self, serial: str) -> Path:
        return self.root / "records" / f"{serial}.json"


def open_factory(root: Path) -> Factory:
    if not (root / "factory.json").is_file():
        raise InputError(f"{root} is not a factory directory: run 'edgeward factory init' first")
    what = f"factory config {root / 'factory.json'}"
    f = Fields(load_object(read_file(root / "factory.json", what), what, InputError), what,
               InputError).expect(CONFIG_FIELDS)
    return Factory(root, certs.check_serial(f.str_("model", 64)), f.str_("manufacturer", 128))


def init(root: Path, model: str, manufacturer: str, version: str, security_version: int,
         passphrase: bytes | None, now: dt.datetime, tuf_root: bytes | None = None
         ) -> Factory:
    """Make the OEM keys, the CA and the first OS release, in a new directory.

    Everything is made aside and renamed into place at the end: a failure
    (a missing tool, a full disk) leaves no half-made factory behind.
    """
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ProvisioningError(f"{root} exists and is not empty: a factory is made once")
    certs.check_serial(model)
    root.parent.mkdir(parents=True, exist_ok=True)
    work = root.parent / f".{root.name}.partial-{secrets.token_hex(4)}"
    try:
        _make(work, model, manufacturer, version, security_version, passphrase, now, tuf_root)
        if root.exists():
            root.rmdir()
        os.rename(work, root)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(work)
    return open_factory(root)


def _make(root: Path, model: str, manufacturer: str, version: str, security_version: int,
          passphrase: bytes | None, now: dt.datetime, tuf_root: bytes | None) -> None:
    private_dir(root)
    made = {name: keys.generate(alg) for name, alg in KEYS.items()}
    for name, key in made.items():
        folder = "offline" if name in OFFLINE else "keys"
        save_private_key(root / folder / f"{name}.key", key, passphrase)
        write_atomic(root / "keys" / f"{name}.pub", keys.public_pem(key.public_key()))
    ca_cert = certs.make_ca(made["ca"], manufacturer, now)
    write_atomic(root / "ca.pem", certs.cert_pem(ca_cert))
    station_csr = certs.make_csr(made["station"], "factory-station")
    station = certs.issue(made["ca"], ca_cert, station_csr, "factory-station", model, now,
                          purpose="station")
    write_atomic(root / "station.pem", certs.cert_pem(station))
    build_release(root / "release", version, security_version, model,
                  made["boot-root"], made["kernel"], tuf_root)
    private_dir(root / "records")
    write_atomic(root / "factory.json", canonical({
        "model": model, "manufacturer": manufacturer, "created": now.isoformat(),
        "passphrase_protected": bool(passphrase),
        "release": {"version": version, "security_version": security_version},
        "keys": {name: keys.keyid(key.public_key()) for name, key in made.items()},
    }) + b"\n")


def config(factory: Factory) -> dict[str, object]:
    """The factory's public configuration (key ids, release), for reports."""
    what = "factory config"
    return load_object(read_file(factory.root / "factory.json", what), what, InputError)
