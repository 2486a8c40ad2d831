"""``edgeward device audit``: the gateway's hardening audit, on demand."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from edgeward.board.virtual import VirtualBoard
from edgeward.cli.common import device_option, json_option
from edgeward.cli.output import console, emit_json
from edgeward.device.hardening.booted import audit_board
from edgeward.device.hardening.finding import Finding, summary
from edgeward.device.hardening.services import parse_allowed

COLOURS = {"high": "red", "medium": "yellow", "low": "cyan"}


def print_findings(findings: list[Finding]) -> None:
    if not findings:
        console.print("[green]no findings[/]")
        return
    table = Table(title="hardening audit", show_lines=True)
    for column in ("severity", "check", "finding", "what to do"):
        table.add_column(column)
    for f in findings:
        colour = COLOURS[f.severity]
        table.add_row(f"[{colour}]{f.severity}[/]", f.check,
                      f"{f.title}\n[dim]{f.detail}[/]", f.advice)
    console.print(table)
    counts = summary(findings)
    console.print(", ".join(f"{n} {severity}" for severity, n in counts.items()))


@click.command("audit")
@device_option
@click.option("--allow", "allow", multiple=True, metavar="SERVICE",
              help="An expected listening service: PORT, PROGRAM, PROGRAM:PORT, with tcp/ or "
                   "udp/ in front to say which (repeatable).")
@json_option
def audit(device: Path, allow: tuple[str, ...], as_json: bool) -> None:
    """The hardening audit of the booted system: consoles and the kernel command line,
    accounts and passwords, SSH settings, listening services, file modes in system
    paths, the debug-disable fuse. Each finding says what to do about it; exit 0 with
    findings (it is a report), non-zero only if the audit could not run."""
    allowed = [parse_allowed(a) for a in allow]
    findings = audit_board(VirtualBoard.open(device), allowed)
    if as_json:
        emit_json({"findings": [f.to_dict() for f in findings],
                   "summary": summary(findings)})
    else:
        print_findings(findings)
