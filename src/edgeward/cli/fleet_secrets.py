"""``edgeward fleet secrets``, ``fleet recovery-key`` and ``fleet credentials``: a
tenant's secrets for its apps (set, listed, revoked), a gateway's escrowed recovery key
and the credentials its apps made.

A secret's value is read from ``--file`` or from standard input (a hidden prompt on a
terminal), never from the command line, where the shell history and ``ps`` would keep
it. One trailing newline is dropped (what ``echo`` and editors add).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click
from rich.table import Table
from rich.text import Text

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, report
from edgeward.errors import InputError
from edgeward.files import read_file

MAX_VALUE = 64 * 1024


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with operator_config.load().client() as client:
        return client.call(method, path, body)


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text("-" if row.get(c) is None else str(row[c])) for c in columns))
    console.print(table)


def read_value(source: Path | None) -> str:
    """The value from ``source`` or stdin (prompted, hidden, on a terminal)."""
    stdin = click.get_binary_stream("stdin")
    if source is not None:
        data = read_file(source, "secret file", MAX_VALUE + 2)
    elif stdin.isatty():
        data = click.prompt("value", hide_input=True, confirmation_prompt=True,
                            err=True).encode()
    else:
        data = stdin.read(MAX_VALUE + 3)
    data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    if not data:
        raise InputError("the value is empty")
    if len(data) > MAX_VALUE:
        raise InputError(f"the value is over {MAX_VALUE} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise InputError("the value is not UTF-8 text") from e


@click.group()
def secrets() -> None:
    """The tenant's secrets for its apps, delivered sealed to attested gateways."""


@secrets.command("set")
@click.argument("app")
@click.argument("name")
@click.option("--group", help="Only for this gateway group (overrides the tenant-wide one).")
@click.option("--file", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the value from this file (default: standard input).")
@json_option
def secrets_set(app: str, name: str, group: str | None, source: Path | None,
                as_json: bool) -> None:
    """Set secret NAME of APP (admin): a new version, delivered at the next check-in."""
    body = {"value": read_value(source), "group": group}
    report(_call("PUT", f"/v1/secrets/{_path(app, name)}", body), as_json,
           lambda s: console.print(f"secret {s['app']}/{s['name']}"
                                   f"{' for group ' + s['group'] if s['group'] else ''} "
                                   f"set: version {s['version']}"))


@secrets.command("list")
@click.option("--app", help="Only this app's secrets.")
@json_option
def secrets_list(app: str | None, as_json: bool) -> None:
    """The tenant's secrets: app, name, group, version, updated (never a value)."""
    query = f"?{urlencode({'app': app})}" if app else ""
    report(_call("GET", f"/v1/secrets{query}"), as_json, lambda rows: _table(
        "secrets", [{**r, "group": r["group"] or "(every gateway)"} for r in rows],
        ["app", "name", "group", "version", "updated_at"]))


@secrets.command("rm")
@click.argument("app")
@click.argument("name")
@click.option("--group", help="The group's value (default: the tenant-wide one).")
@json_option
def secrets_rm(app: str, name: str, group: str | None, as_json: bool) -> None:
    """Revoke secret NAME of APP (admin): erased, and no longer delivered."""
    query = f"?{urlencode({'group': group})}" if group else ""
    report(_call("DELETE", f"/v1/secrets/{_path(app, name)}{query}"), as_json,
           lambda s: console.print(f"secret {s['app']}/{s['name']} revoked "
                                   f"(was version {s['version']})"))


@click.command("recovery-key")
@click.argument("serial")
@json_option
def recovery_key(serial: str, as_json: bool) -> None:
    """The data-volume recovery key gateway SERIAL escrowed (tenant admin; audited)."""
    report(_call("GET", f"/v1/gateways/{_path(serial)}/recovery-key"), as_json,
           lambda k: console.print(Text(k["recovery_key"])))


@click.command()
@click.argument("serial")
@click.option("--app", help="Only this app's credentials.")
@click.option("--name", help="Only this credential.")
@click.option("--reveal", is_flag=True,
              help="Show the value of --app/--name (tenant admin; audited).")
@json_option
def credentials(serial: str, app: str | None, name: str | None, reveal: bool,
                as_json: bool) -> None:
    """The credentials gateway SERIAL made for its apps: names, or one value (--reveal)."""
    if reveal:
        if not app or not name:
            raise InputError("--reveal needs --app and --name")
        report(_call("GET", f"/v1/gateways/{_path(serial, 'credentials', app, name)}"),
               as_json, lambda c: console.print(Text(c["value"])))
        return
    rows = [r for r in _call("GET", f"/v1/gateways/{_path(serial)}/credentials")
            if (app is None or r["app"] == app) and (name is None or r["name"] == name)]
    report(rows, as_json, lambda found: _table(f"credentials of {serial}", found,
                                               ["app", "name", "reported_at"]))
