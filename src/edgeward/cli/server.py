"""``edgeward server``: the fleet server."""

from __future__ import annotations

from pathlib import Path

import click

from edgeward.cli.common import now
from edgeward.server.runner import Settings, parse_listen, run


@click.group()
def server() -> None:
    """The fleet server: registry, attestation, API."""


@server.command("run")
@click.option("--db", "db_url", help="Database URL (default: SQLite in the data directory; "
                                     "postgresql://USER@HOST:PORT/DB for PostgreSQL).")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/var/lib/edgeward"), show_default=True,
              help="Data directory: database, TLS identity, trusted CAs, admin token.")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT.")
@click.option("--trust-ca", "trust_cas", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="A manufacturer CA whose gateways may enrol (repeatable; kept in DATA).")
@click.option("--known-good", "known_good", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Known-good measurements for attestation (repeatable; kept in DATA).")
@click.option("--server-name", "names", multiple=True,
              help="A DNS name or address gateways use to reach the server (repeatable; "
                   "goes into the server certificate).")
@click.option("--master-key", "master_key", type=click.Path(dir_okay=False, path_type=Path),
              help="File (mode 0600) holding the 32-byte master key that encrypts secrets at "
                   "rest, raw or hex; else $EDGEWARD_MASTER_KEY (hex), else DATA/master.key "
                   "(made on first start: move it off the data disk).")
@click.option("--hook-network", "hook_networks", multiple=True, metavar="CIDR",
              help="A network that tenants' alert hooks may reach besides the public "
                   "internet, e.g. 10.20.0.0/16 for a SIEM inside, or 127.0.0.0/8 for a "
                   "receiver on this machine (repeatable; default: none).")
def run_command(db_url: str | None, data: Path, listen: str, trust_cas: tuple[Path, ...],
                known_good: tuple[Path, ...], names: tuple[str, ...],
                master_key: Path | None, hook_networks: tuple[str, ...]) -> None:
    """Run the fleet server over HTTPS (mutual TLS for gateways)."""
    host, port = parse_listen(listen)
    run(Settings(data, db_url, host, port, trust_cas, known_good, names, master_key,
                 hook_networks), now())
