"""``edgeward attestation``: verify a gateway's quote as the fleet server will."""

from __future__ import annotations

from pathlib import Path

import click

from edgeward.cli.common import json_option, now
from edgeward.cli.output import console, emit_json
from edgeward.device.attest import parse_nonce
from edgeward.files import read_file
from edgeward.trust.certs import load_cert
from edgeward.trust.quote import KnownGood, verify_quote


@click.group()
def attestation() -> None:
    """Verify attestation quotes."""


@attestation.command()
@click.option("--quote", "quote_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The signed quote.")
@click.option("--cert", "cert_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The device certificate.")
@click.option("--ca", "ca_files", required=True, multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A trusted manufacturer CA certificate (repeatable).")
@click.option("--known-good", "known_files", required=True, multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Known-good measurements (repeatable; merged).")
@click.option("--nonce", required=True, help="The nonce that was issued (hex).")
@json_option
def verify(quote_file: Path, cert_file: Path, ca_files: tuple[Path, ...],
           known_files: tuple[Path, ...], nonce: str, as_json: bool) -> None:
    """Check a quote: certificate chain, signature, nonce, event log, known-good values."""
    known = KnownGood()
    for path in known_files:
        known = known.merged(KnownGood.from_json(read_file(path, "known-good file")))
    verdict = verify_quote(
        read_file(quote_file, "quote"),
        load_cert(read_file(cert_file, "device certificate"), "device certificate"),
        [load_cert(read_file(p, "CA certificate"), "CA certificate") for p in ca_files],
        parse_nonce(nonce), known, now())
    if as_json:
        emit_json({"verdict": "attested", "serial": verdict.serial,
                   "register": verdict.register, "slot": verdict.slot,
                   "events": [e.to_dict() for e in verdict.events]})
        return
    console.print(f"[bold green]attested[/] {verdict.serial}: slot {verdict.slot}, "
                  f"{len(verdict.events)} known-good measurements")
