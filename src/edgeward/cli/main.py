"""``edgeward``: the one place where errors turn into messages and exit codes."""

from __future__ import annotations

import sys

import click

from edgeward import __version__
from edgeward.cli.app import app
from edgeward.cli.attestation import attestation
from edgeward.cli.demo import demo
from edgeward.cli.device import device
from edgeward.cli.factory import factory
from edgeward.cli.fleet import fleet
from edgeward.cli.release import release
from edgeward.cli.rollout import rollout
from edgeward.cli.server import server
from edgeward.cli.sim import sim
from edgeward.errors import Error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeward")
def cli() -> None:
    """edgeward: end-to-end security for fleets of Linux IoT gateways.

    Factory identity and fused roots of trust, a verified and measured boot,
    attestation; see 'edgeward COMMAND --help'.
    """


cli.add_command(factory)
cli.add_command(device)
cli.add_command(attestation)
cli.add_command(demo)
cli.add_command(server)
cli.add_command(fleet)
cli.add_command(release)
cli.add_command(app)
cli.add_command(sim)
release.add_command(rollout)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="edgeward", standalone_mode=False)
    except Error as e:
        click.echo(f"edgeward: error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("edgeward: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except OSError as e:  # a file or device the OS refused us, named without a traceback
        click.echo(f"edgeward: error: {e.strerror or e}"
                   f"{': ' + str(e.filename) if e.filename else ''}", err=True)
        sys.exit(1)
    sys.exit(0)
