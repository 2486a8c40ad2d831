"""``edgeward fleet logs``: search the fleet's central logs, or read those around an
alert. Uses the saved ``edgeward fleet login``."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import click
from rich.table import Table
from rich.text import Text

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.fleet_apps import since_value
from edgeward.cli.output import console, report
from edgeward.errors import InputError

LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "debug": "dim"}


def _show(found: dict[str, Any]) -> None:
    alert = found.get("alert")
    if alert:
        where = alert["gateway"] or "no gateway"
        if alert["app"]:
            where += f", app {alert['app']}"
        console.print(Text(f"alert #{alert['id']} {alert['kind']} ({alert['severity']}, "
                           f"{alert['status']}) on {where} at {alert['at']}", style="bold"))
        console.print(Text(alert["detail"]))
    lines = found["lines"]
    if not lines:
        console.print("no log lines" + (" around this alert" if alert else " found"))
        return
    table = Table(title="log lines" + (" around the alert, oldest first" if alert
                                       else ", newest first"))
    for header in ("time (UTC)", "gateway", "app", "level", "line"):
        table.add_column(header, overflow="fold")
    for line in lines:  # as plain text: a line may hold what rich takes for markup
        table.add_row(Text(line["time"][:23].replace("T", " ")), Text(line["gateway"]),
                      Text(line["app"] or "(agent)"),
                      Text(line["level"], style=LEVEL_STYLE.get(line["level"], "")),
                      Text(line["text"]))
    console.print(table)
    if not alert and lines:
        console.print(f"older lines: add --before {lines[-1]['id']}", style="dim")


def _time(option: str, text: str, now: dt.datetime) -> str:
    try:
        return since_value(text, now)
    except InputError as e:
        raise InputError(f"--{option} {text!r}: give 10m, 2h, 1d, epoch seconds or an "
                         "ISO 8601 time") from e


@click.command()
@click.option("--gateway", help="Only this gateway (its serial).")
@click.option("--app", help="Only this app.")
@click.option("--since", help="Only lines since: 10m, 2h, 1d ago, or an ISO 8601 time.")
@click.option("--until", help="Only lines until: 10m, 2h, 1d ago, or an ISO 8601 time.")
@click.option("--grep", "words", metavar="WORDS",
              help="Lines with all these words (full text; word* for a prefix).")
@click.option("--alert", type=click.IntRange(1, 2**31 - 1),
              help="The alert with this number and its gateway's lines around it (no "
                   "other filter).")
@click.option("--before", type=click.IntRange(1), help="Lines older than the line with "
              "this id (to page on).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000),
              help="At most this many lines.")
@json_option
def logs(gateway: str | None, app: str | None, since: str | None, until: str | None,
         words: str | None, alert: int | None, before: int | None, limit: int,
         as_json: bool) -> None:
    """The apps' and agents' log lines the tenant's gateways shipped, newest first.

    With --alert, the alert and the lines of its gateway (of its app and the agent,
    when it names an app) from 15 minutes before it to 2 minutes after, oldest first.

    \b
    edgeward fleet logs --gateway gw-1 --since 1h
    edgeward fleet logs --app miner --grep "connection refus*"
    edgeward fleet logs --alert 42
    """
    query: dict[str, str] = {"limit": str(limit)}
    if alert is not None:
        if any(v is not None for v in (gateway, app, since, until, words, before)):
            raise InputError("--alert takes no other filter but --limit")
        query["alert"] = str(alert)
    now = dt.datetime.now(dt.UTC)
    for key, value in (("gateway", gateway), ("app", app), ("q", words),
                       ("before", None if before is None else str(before))):
        if value:
            query[key] = value
    for key, value in (("since", since), ("until", until)):
        if value:
            query[key] = _time(key, value, now)
    with operator_config.load().client() as client:
        found = client.call("GET", f"/v1/logs?{urlencode(query)}")
    report(found, as_json, _show)
