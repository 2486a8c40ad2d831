"""``edgeward fleet findings``: what the gateways' hardening audits and the server's fleet
audits found, most severe first, each with what to do about it.

Uses the saved ``edgeward fleet login``; ``--json`` gives the server's answer as is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import click
from rich.table import Table
from rich.text import Text

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, report

SEVERITIES = ("high", "medium", "low")
STYLES = {"high": "bold red", "medium": "yellow", "low": "dim"}
COLUMNS = (("gateway", "Gateway"), ("source", "Source"), ("check", "Check"),
           ("title", "Finding"), ("detail", "Detail"), ("advice", "What to do"))


def _call(path: str) -> Any:
    with operator_config.load().client() as client:
        return client.call("GET", path)


def show(answer: dict[str, Any]) -> None:
    """A table per severity (cells as plain text: a finding may quote brackets)."""
    summary = answer["summary"]
    console.print(Text(", ".join(f"{summary[s]} {s}" for s in SEVERITIES)
                       + f" ({summary['total']} findings)"))
    for severity in SEVERITIES:
        rows = [f for f in answer["findings"] if f["severity"] == severity]
        if not rows:
            continue
        table = Table(title=Text(f"{severity} ({len(rows)})", style=STYLES[severity]),
                      show_lines=True)
        for _, header in COLUMNS:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*(Text(str(row.get(key) or "-")) for key, _ in COLUMNS))
        console.print(table)
    if not answer["findings"]:
        console.print("no findings")
    if answer.get("truncated"):
        console.print("(more not shown: give --gateway or --severity)")


@click.command()
@click.option("--gateway", help="Only this gateway (its serial).")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Only this severity.")
@click.option("--source", type=click.Choice(["gateway", "fleet"]),
              help="Only the gateways' own hardening audits, or only the fleet audits.")
@click.option("--expiring-within", default=30, show_default=True, metavar="DAYS",
              type=click.IntRange(1, 3650),
              help="A certificate expiring within this many days is a finding.")
@json_option
def findings(gateway: str | None, severity: str | None, source: str | None,
             expiring_within: int, as_json: bool) -> None:
    """Audit findings of the tenant's gateways, most severe first, with what to do.

    Source "gateway": a gateway's hardening audit (console logins, passwords, SSH,
    listening services, file modes, the debug fuse), as it last reported. Source
    "fleet": the server's audits (a certificate used twice, certificates expiring or
    revoked but still in use, security patches not installed, attestation stopped).
    """
    query = {k: v for k, v in (("gateway", gateway), ("severity", severity),
                               ("source", source)) if v}
    query["expiring_within"] = str(expiring_within)
    report(_call(f"/v1/findings?{urlencode(query)}"), as_json, show)
