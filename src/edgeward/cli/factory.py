"""``edgeward factory``: OEM keys and provisioning."""

from __future__ import annotations

from pathlib import Path

import click

from edgeward.cli.common import (
    device_option,
    json_option,
    now,
    passphrase_option,
    read_passphrase,
)
from edgeward.cli.output import console, emit_json
from edgeward.errors import UsageError
from edgeward.factory import station
from edgeward.factory.provision import enrol
from edgeward.factory.provision import provision as do_provision
from edgeward.files import read_file
from edgeward.trust import publication


@click.group()
def factory() -> None:
    """The factory station: OEM keys, manufacturer CA, provisioning gateways."""


@factory.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default="ew-gw1", show_default=True, help="Gateway model name.")
@click.option("--manufacturer", default="edgeward OEM", show_default=True,
              help="Organisation named in the CA certificate.")
@click.option("--os-version", default="1.0.0", show_default=True,
              help="Version of the first OS release built for the factory.")
@click.option("--security-version", default=1, show_default=True, type=click.IntRange(0, 64),
              help="Security version of that release (fused at provisioning).")
@click.option("--tuf-root", type=click.Path(dir_okay=False, path_type=Path),
              help="TUF root metadata to ship in the rootfs (from 'edgeward release init'): "
                   "the gateways' update trust anchor.")
@passphrase_option
@json_option
def init(directory: Path, model: str, manufacturer: str, os_version: str,
         security_version: int, tuf_root: Path | None, passphrase_file: Path | None,
         as_json: bool) -> None:
    """Make the OEM keys (boot root, kernel, CA, station, escrow) and the first release."""
    root = read_file(tuf_root, "TUF root metadata") if tuf_root else None
    if root is not None:
        publication.parse(root, "root")
    made = station.init(directory, model, manufacturer, os_version, security_version,
                        read_passphrase(passphrase_file), now(), root)
    config = station.config(made)
    if as_json:
        emit_json({"factory": str(directory), **config})
        return
    console.print(f"[bold green]factory ready[/] in {directory} (model {model})")
    for name, kid in dict(config["keys"]).items():  # type: ignore[call-overload]
        console.print(f"  {name:10} key {kid[:24]}…")
    console.print(f"  release {os_version} (security version {security_version}) signed")


@factory.command()
@click.option("--factory", "factory_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="The factory directory.")
@device_option
@click.option("--serial", required=True, help="The gateway's serial number.")
@click.option("--server", help="Fleet server URL: enrol the gateway there at the factory.")
@click.option("--server-ca", type=click.Path(dir_okay=False, path_type=Path),
              help="The fleet server's CA certificate (with --server).")
@click.option("--tpm", is_flag=True,
              help="The board has a TPM (a software TPM here): seal the /data key in it, "
                   "under the OS vendor's approvals of its releases, instead of the HUK.")
@passphrase_option
@json_option
def provision(factory_dir: Path, device: Path, serial: str, server: str | None,
              server_ca: Path | None, tpm: bool, passphrase_file: Path | None,
              as_json: bool) -> None:
    """Make one gateway: burn fuses, flash slot A, device identity, record; enrol it."""
    if (server is None) != (server_ca is None):
        raise UsageError("--server and --server-ca go together")
    result = do_provision(station.open_factory(factory_dir), device, serial,
                          read_passphrase(passphrase_file), now(), tpm)
    enrolled = enrol(device, server, server_ca) if server and server_ca else None
    if as_json:
        emit_json({"serial": result.serial, "device": str(result.device),
                   "certificate_sha384": result.certificate_sha384,
                   "fuse_hash": result.fuse_hash, "record": str(result.record),
                   "test_boot": result.boot.to_dict(), "enrolled": enrolled is not None,
                   "attestation": enrolled})
        return
    console.print(f"[bold green]provisioned[/] {serial} in {device}")
    console.print(f"  certificate sha384 {result.certificate_sha384[:32]}…")
    console.print(f"  fuse hash          {result.fuse_hash[:32]}…")
    console.print(f"  test boot          {result.boot.verdict} (slot {result.boot.slot})")
    console.print(f"  /data key          sealed {'in the TPM' if tpm else 'under the HUK'}")
    if enrolled is not None:
        console.print(f"  enrolled with {server}: attestation {enrolled}")
