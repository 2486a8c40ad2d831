"""``edgeward fleet rules``: the tenant's alert rules (threshold and duration)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, emit_json, report


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with operator_config.load().client() as client:
        return client.call(method, path, body)


def _show(rows: list[dict[str, Any]]) -> None:
    table = Table(title="alert rules")
    for column in ("name", "rule", "severity", "created by"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["reads"], row["severity"], row["created_by"])
    console.print(table)


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def rules(context: click.Context, as_json: bool) -> None:
    """Alert rules: a metric past a threshold for a duration raises an alert (the
    detectors' own baselines need no rules; these are for what you know to watch)."""
    if context.invoked_subcommand is None:
        report(_call("GET", "/v1/alert-rules"), as_json, _show)


@rules.command("add")
@click.argument("name")
@click.option("--metric", required=True,
              help="cpu_percent, memory_percent, disk_percent, load1, net_tx_rate "
                   "(bytes/s), net_rx_rate, ...; of an app: cpu_percent, memory_bytes.")
@click.option("--app", default="", help="The app's metric ('*': any app's); none: the "
                                        "gateway's.")
@click.option("--above", type=float, help="Fires when the metric is above this ...")
@click.option("--below", type=float, help="... or below this.")
@click.option("--for", "duration", default=60, show_default=True,
              type=click.IntRange(0, 86400), help="Seconds it must hold.")
@click.option("--severity", default="medium", show_default=True,
              type=click.Choice(["high", "medium", "low"]))
@json_option
def add(name: str, metric: str, app: str, above: float | None, below: float | None,
        duration: int, severity: str, as_json: bool) -> None:
    """Add a rule, e.g. ``rules add hot-app --metric cpu_percent --app '*' --above 80
    --for 120``."""
    if (above is None) == (below is None):
        raise click.UsageError("give one of --above or --below")
    made = _call("POST", "/v1/alert-rules", {
        "name": name, "metric": metric, "app": app, "op": ">" if above is not None else "<",
        "threshold": above if above is not None else below, "duration": duration,
        "severity": severity})
    if as_json:
        emit_json(made)
    else:
        console.print(f"rule {made['name']}: {made['reads']} ({made['severity']})")


@rules.command("delete")
@click.argument("name")
def delete(name: str) -> None:
    """Delete a rule."""
    _call("DELETE", f"/v1/alert-rules/{quote(name, safe='')}")
    console.print(f"rule {name} deleted")
