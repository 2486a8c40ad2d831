"""``edgeward fleet events`` and ``edgeward fleet apps``: what apps on the fleet's
gateways were refused, how they run, and complain mode with the profile it learns.

Uses the saved ``edgeward fleet login``; every report takes ``--json``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote, urlencode

import click
from rich.table import Table
from rich.text import Text

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, report
from edgeward.errors import InputError

KINDS = ("syscall", "file", "network", "signal", "dbus", "limit", "crash-loop", "suppressed",
         "sandbox", "login", "listen", "remote", "exec", "boot", "update", "audit")
_AGO = re.compile(r"^([0-9]{1,9})([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with operator_config.load().client() as client:
        return client.call(method, path, body)


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def since_value(text: str, now: dt.datetime) -> str:
    """``10m``, ``2h``, ``1d``, ``30s`` ago as epoch seconds; an ISO time or epoch as is."""
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        seconds = int(ago.group(1)) * _UNIT[ago.group(2)]
        return f"{(now - dt.timedelta(seconds=seconds)).timestamp():.3f}"
    try:
        float(text)
    except ValueError:
        try:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as e:
            raise InputError(f"--since {text!r}: give 10m, 2h, 1d, epoch seconds or an "
                             "ISO 8601 time") from e
    return text


def _table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Cells as plain text (a denial may quote brackets that rich would take for markup)."""
    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, overflow="fold")  # nothing cut off on a narrow terminal
    for row in rows:
        table.add_row(*(Text("-" if row.get(key) in (None, "", []) else str(row[key]))
                        for key, _ in columns))
    console.print(table)


@click.command()
@click.option("--gateway", help="Only this gateway (its serial).")
@click.option("--app", help="Only this app.")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of event.")
@click.option("--since", help="Only events since: 10m, 2h, 1d ago, or an ISO 8601 time.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="At most this many, newest first.")
@json_option
def events(gateway: str | None, app: str | None, kind: str | None, since: str | None,
           limit: int, as_json: bool) -> None:
    """Security events from the tenant's gateways, newest first: what apps (or the
    gateway itself) tried that the confinement refused, crash loops, limits hit.

    COUNT is how many identical events one line stands for.
    """
    query: dict[str, str] = {"limit": str(limit)}
    for key, value in (("gateway", gateway), ("app", app), ("kind", kind)):
        if value:
            query[key] = value
    if since:
        query["since"] = since_value(since, dt.datetime.now(dt.UTC))
    rows = _call("GET", f"/v1/events?{urlencode(query)}")
    report(rows, as_json, lambda found: _table("security events", [
        {**e, "app": e["app"] or "(gateway)", "time": e["time"][:19].replace("T", " ")}
        for e in found],
        [("time", "time (UTC)"), ("gateway", "gateway"), ("app", "app"), ("kind", "kind"),
         ("what", "what"), ("count", "count")]))


class _StatusByDefault(click.Group):
    """``fleet apps GATEWAY`` means ``fleet apps status GATEWAY``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["status", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_StatusByDefault)
def apps() -> None:
    """Apps on one gateway: 'fleet apps GATEWAY' shows their status (as 'fleet apps
    status GATEWAY'); 'mode' puts one in complain or enforce mode; 'profile' shows what
    complain mode learnt it needs, as lines for its app.toml."""


def _mode(a: dict[str, Any]) -> str:
    shown = a["mode"] or "-"
    if a["desired_mode"] != (a["mode"] or "enforce"):
        shown += f" ({a['desired_mode']} requested)"
    return shown


@apps.command("status")
@click.argument("gateway")
@json_option
def apps_status(gateway: str, as_json: bool) -> None:
    """The apps GATEWAY reported: version, state, mode, the interfaces granted and those
    asked for but not granted (the app starts without them), restarts."""
    rows = _call("GET", f"/v1/gateways/{_path(gateway)}/apps")

    def show(found: list[dict[str, Any]]) -> None:
        if not found:
            console.print(f"{gateway} reported no apps")
            return
        _table(f"apps on {gateway}", [
            {**a, "state": a["state"] or "not reported", "mode": _mode(a),
             "granted": ", ".join(a["granted"]),
             "withheld": "not granted: " + ", ".join(a["withheld"]) if a["withheld"] else "",
             "profile": "learnt" if a["profile"] else ""} for a in found],
            [("name", "app"), ("version", "version"), ("state", "state"), ("mode", "mode"),
             ("granted", "granted"), ("withheld", "withheld"), ("restarts", "restarts"),
             ("profile", "profile")])

    report(rows, as_json, show)


@apps.command("mode")
@click.argument("gateway")
@click.argument("app")
@click.argument("mode", type=click.Choice(["complain", "enforce"]))
@click.option("--test-gateway", is_flag=True,
              help="Acknowledge that GATEWAY is a test gateway (needed for complain).")
@json_option
def apps_mode(gateway: str, app: str, mode: str, test_gateway: bool, as_json: bool) -> None:
    """Put APP on GATEWAY in complain or enforce mode (a tenant admin; audited).

    In complain mode the gateway lets through what APP's confinement would refuse and
    records it, and learns the interfaces and egress APP needs ('fleet apps profile').
    That opens the sandbox, so it is for test gateways only: say so with
    --test-gateway. Enforce (the default) needs no acknowledgement. The gateway takes
    the change at its next check-in.
    """
    body: dict[str, Any] = {"mode": mode, "test_gateway": test_gateway}
    answer = _call("PUT", f"/v1/gateways/{_path(gateway, 'apps', app, 'mode')}", body)

    def show(a: dict[str, Any]) -> None:
        console.print(f"{a['app']} on {a['gateway']}: {a['mode']} (was {a['previous']})")
        if a["mode"] == "complain":
            console.print(f"[yellow]{a['app']}'s confinement on {a['gateway']} now only "
                          "logs; put it back with 'enforce' when done[/]")

    report(answer, as_json, show)


def snippet(profile: dict[str, Any]) -> str:
    """The profile for a person: manifest lines to paste, then what stays denied."""
    lines = [f"# {profile['app']} {profile['version']} on {profile['gateway']}, learnt in "
             f"complain mode from {profile['observed_from']} to {profile['observed_to']}",
             profile["manifest"].rstrip("\n")]
    if profile["denied"]:
        lines += ["", "# still denied: no interface would allow these"]
        lines += [f"#   {d['what']} (x{d['count']})" for d in profile["denied"]]
    return "\n".join(lines)


@apps.command("profile")
@click.argument("gateway")
@click.argument("app")
@json_option
def apps_profile(gateway: str, app: str, as_json: bool) -> None:
    """What complain mode learnt APP needs on GATEWAY: the smallest 'plugs' and
    '[egress] allow' that let it run, as lines to paste into its app.toml, then what
    would still be denied whatever it is granted."""
    profile = _call("GET", f"/v1/gateways/{_path(gateway, 'apps', app, 'profile')}")
    report(profile, as_json, lambda p: click.echo(snippet(p)))
