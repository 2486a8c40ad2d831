"""``edgeward fleet alerts`` (list, acknowledge, judge, resolve; the web hook),
``edgeward fleet remediate`` and ``edgeward fleet actions``: responding to an alert.

Uses the saved ``edgeward fleet login``; every report takes ``--json``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import click
from rich.table import Table
from rich.text import Text

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, report

STATUSES = ("open", "acked", "resolved")
SEVERITIES = ("critical", "high", "medium", "low")
ACTIONS = ("stop-app", "cut-network", "restore-network", "quarantine", "release", "audit")
ALERT_COLUMNS = [("id", "id"), ("at", "when"), ("gateway", "gateway"),
                 ("severity", "severity"), ("kind", "kind"), ("app", "app"),
                 ("status", "status"), ("verdict", "verdict"), ("detail", "detail")]
ACTION_COLUMNS = [("id", "id"), ("action", "action"), ("app", "app"), ("alert", "alert"),
                  ("status", "status"), ("result", "result"),
                  ("requested_by", "ordered by"), ("requested_at", "ordered at"),
                  ("done_at", "reported at")]


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with operator_config.load().client() as client:
        return client.call(method, path, body)


def _table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Cells as plain text: a detail may quote brackets that rich would take for markup."""
    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(row[key]) if row.get(key) not in (None, "") else "-")
                        for key, _ in columns))
    console.print(table)


def _said(alert: dict[str, Any]) -> None:
    verdict = f", {alert['verdict']}" if alert["verdict"] else ""
    console.print(Text(f"alert {alert['id']} ({alert['kind']} on {alert['gateway'] or '-'}): "
                       f"{alert['status']}{verdict}"))


@click.group(invoke_without_command=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--status", type=click.Choice(STATUSES), help="Only alerts in this state.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Only this severity.")
@click.option("--gateway", help="Only this gateway's alerts (its serial).")
@json_option
@click.pass_context
def alerts(ctx: click.Context, limit: int, status: str | None, severity: str | None,
           gateway: str | None, as_json: bool) -> None:
    """The tenant's alerts, newest first (e.g. a cloned identity); with a subcommand,
    acknowledge, judge or resolve one, or set the web hook they are posted to."""
    if ctx.invoked_subcommand is not None:
        return
    query = urlencode({k: v for k, v in (("limit", limit), ("status", status),
                                         ("severity", severity), ("gateway", gateway)) if v})
    report(_call("GET", f"/v1/alerts?{query}"), as_json,
           lambda rows: _table("alerts", rows, ALERT_COLUMNS))


@alerts.command("ack")
@click.argument("alert_id", type=click.IntRange(1))
@json_option
def ack(alert_id: int, as_json: bool) -> None:
    """Acknowledge alert ALERT_ID: someone is on it."""
    report(_call("POST", f"/v1/alerts/{alert_id}/ack"), as_json, _said)


@alerts.command("verdict")
@click.argument("alert_id", type=click.IntRange(1))
@click.argument("verdict", type=click.Choice(["true-positive", "false-positive"]))
@json_option
def verdict(alert_id: int, verdict: str, as_json: bool) -> None:
    """Mark alert ALERT_ID a true or a false positive (acknowledging it if open)."""
    report(_call("POST", f"/v1/alerts/{alert_id}/verdict", {"verdict": verdict}), as_json,
           _said)


@alerts.command("resolve")
@click.argument("alert_id", type=click.IntRange(1))
@json_option
def resolve(alert_id: int, as_json: bool) -> None:
    """Resolve alert ALERT_ID: done with it."""
    report(_call("POST", f"/v1/alerts/{alert_id}/resolve"), as_json, _said)


@alerts.group("hook")
def hook() -> None:
    """(Tenant admins) the web hook the tenant's new alerts are posted to, signed."""


def _show_hook(h: dict[str, Any]) -> None:
    console.print(Text(f"{h['url']}: {h['delivered']} delivered, {h['failed']} failed"
                       + (f" (last error: {h['last_error']})" if h["last_error"] else "")))


@hook.command("set")
@click.argument("url")
@json_option
def hook_set(url: str, as_json: bool) -> None:
    """Post each new alert to URL (https://...; plain http:// only to this machine:
    localhost, 127.0.0.1, ::1) as JSON {id, at, gateway, kind, app, severity, detail,
    evidence}, with X-Edgeward-Delivery: <alert id> and X-Edgeward-Signature:
    sha256=<HMAC-SHA256 of the body keyed with the signing key as printed>. Prints a new
    signing key, this once (setting it again replaces the URL and the key). At least
    once: deduplicate on the alert id. Redirects are not followed."""
    def show(h: dict[str, Any]) -> None:
        console.print(Text(f"alerts are posted to {h['url']}"))
        console.print(Text(f"signing key (shown once, keep it with the receiver): {h['key']}"))

    report(_call("PUT", "/v1/alert-hook", {"url": url}), as_json, show)


@hook.command("show")
@json_option
def hook_show(as_json: bool) -> None:
    """Where alerts are posted and how delivery goes (never the key)."""
    report(_call("GET", "/v1/alert-hook"), as_json, _show_hook)


@hook.command("delete")
def hook_delete() -> None:
    """Stop posting alerts (the key is forgotten)."""
    _call("DELETE", "/v1/alert-hook")
    console.print("alert hook deleted")


@click.command()
@click.argument("serial")
@click.argument("action", type=click.Choice(ACTIONS))
@click.option("--app", help="The app (stop-app, cut-network, restore-network).")
@click.option("--alert", "alert_id", type=click.IntRange(1),
              help="The alert this answers (acknowledged with it).")
@json_option
def remediate(serial: str, action: str, app: str | None, alert_id: int | None,
              as_json: bool) -> None:
    """Order gateway SERIAL to act: stop an app, cut or restore its network, quarantine
    the gateway (only its update and monitoring channels stay open) or release it, or
    run its hardening audit now (its findings then show in `edgeward fleet findings`).
    The gateway takes the order at its next check; see `edgeward fleet actions SERIAL`."""
    body: dict[str, Any] = {"action": action}
    if app:
        body["app"] = app
    if alert_id is not None:
        body["alert"] = alert_id
    report(_call("POST", f"/v1/gateways/{quote(serial, safe='')}/actions", body), as_json,
           lambda a: console.print(Text(
               f"action {a['id']} ({a['action']}{' ' + a['app'] if a['app'] else ''}) "
               f"queued for {a['gateway']}: {a['status']}")))


@click.command()
@click.argument("serial")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def actions(serial: str, limit: int, as_json: bool) -> None:
    """The actions ordered for gateway SERIAL, newest first, and how each went."""
    report(_call("GET", f"/v1/gateways/{quote(serial, safe='')}/actions?limit={limit}"),
           as_json, lambda rows: _table(f"actions of {serial}", rows, ACTION_COLUMNS))
