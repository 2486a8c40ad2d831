"""``edgeward fleet``: the operator's view of the fleet, over the server's API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, emit_json
from edgeward.errors import InputError

TOKEN_ENV = "EDGEWARD_TOKEN"  # noqa: S105 (the variable's name)


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with operator_config.load().client() as client:
        return client.call(method, path, body)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c) if row.get(c) is not None else "-") for c in columns))
    console.print(table)


def _report(data: Any, as_json: bool, show: Any) -> None:
    if as_json:
        emit_json(data)
    else:
        show(data)


@click.group()
def fleet() -> None:
    """Operate the fleet: gateways, tenants, users, tokens, audit (over the API)."""


@fleet.command()
@click.option("--server", required=True, help="Fleet server URL.")
@click.option("--ca", "ca", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The server's CA certificate (DATA/tls/server-ca.pem on the server).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help=f"File holding the API token (or set {TOKEN_ENV}).")
@json_option
def login(server: str, ca: Path, token_file: Path | None, as_json: bool) -> None:
    """Check a token against the server and keep it for the next commands (0600)."""
    token = token_file.read_text().strip() if token_file else os.environ.get(TOKEN_ENV, "")
    if not token:
        raise InputError(f"give --token-file or set {TOKEN_ENV}")
    saved = operator_config.save(server, ca, token)
    with saved.client() as client:
        me = client.call("GET", "/v1/me")
    _report(me, as_json, lambda m: console.print(
        f"logged in to {server} as {m['tenant']}/{m['user']} ({m['role']})"))


@fleet.command()
@json_option
def whoami(as_json: bool) -> None:
    """Who the saved token belongs to, and what it may do."""
    _report(_call("GET", "/v1/me"), as_json, lambda m: console.print(
        f"{m['tenant']}/{m['user']} ({m['role']}): {', '.join(m['actions'])}"))


GATEWAY_COLUMNS = ["serial", "model", "status", "attestation", "slot", "last_seen_at"]


@fleet.command()
@json_option
def gateways(as_json: bool) -> None:
    """List the tenant's gateways: status, attestation, slot, last seen."""
    _report(_call("GET", "/v1/gateways"), as_json,
            lambda rows: _table("gateways", rows, GATEWAY_COLUMNS))


@fleet.command()
@click.argument("serial")
@json_option
def show(serial: str, as_json: bool) -> None:
    """One gateway in full."""
    def render(g: dict[str, Any]) -> None:
        for key, value in g.items():
            console.print(f"{key:20} {value}")

    _report(_call("GET", f"/v1/gateways/{serial}"), as_json, render)


@fleet.command()
@click.argument("serial")
@json_option
def revoke(serial: str, as_json: bool) -> None:
    """Revoke a gateway: its certificate is refused from now on."""
    _report(_call("POST", f"/v1/gateways/{serial}/revoke"), as_json,
            lambda g: console.print(f"{g['serial']} revoked"))


@fleet.command()
@click.argument("serial")
@click.option("--tenant", required=True)
@json_option
def assign(serial: str, tenant: str, as_json: bool) -> None:
    """(Platform admin) hand an enrolled gateway to a tenant."""
    _report(_call("POST", f"/v1/gateways/{serial}/assign", {"tenant": tenant}), as_json,
            lambda g: console.print(f"{g['serial']} assigned to {tenant}"))


@fleet.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def audit(limit: int, as_json: bool) -> None:
    """The tenant's audit log, newest first."""
    _report(_call("GET", f"/v1/audit?limit={limit}"), as_json,
            lambda rows: _table("audit log", rows, ["at", "actor", "action", "target"]))


@fleet.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def alerts(limit: int, as_json: bool) -> None:
    """The tenant's alerts, newest first (e.g. a cloned identity)."""
    _report(_call("GET", f"/v1/alerts?limit={limit}"), as_json,
            lambda rows: _table("alerts", rows, ["at", "gateway", "kind", "detail"]))


@fleet.group()
def tenants() -> None:
    """(Platform admin) tenants."""


@tenants.command("create")
@click.argument("name")
@json_option
def tenants_create(name: str, as_json: bool) -> None:
    _report(_call("POST", "/v1/tenants", {"name": name}), as_json,
            lambda t: console.print(f"tenant {t['name']} created"))


@fleet.group()
def users() -> None:
    """Users of the tenant."""


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    _report(_call("GET", "/v1/users"), as_json,
            lambda rows: _table("users", rows, ["name", "role"]))


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "operator", "viewer"]))
@click.option("--tenant", help="(Platform admin) another tenant's first user.")
@json_option
def users_add(name: str, role: str, tenant: str | None, as_json: bool) -> None:
    body: dict[str, Any] = {"name": name, "role": role}
    if tenant:
        body["tenant"] = tenant
    _report(_call("POST", "/v1/users", body), as_json,
            lambda u: console.print(f"user {u['name']} ({u['role']}) added"))


@fleet.group()
def tokens() -> None:
    """API tokens (shown once, stored hashed on the server)."""


@tokens.command("issue")
@click.argument("user")
@click.option("--tenant", help="(Platform admin) a user of another tenant.")
@json_option
def tokens_issue(user: str, tenant: str | None, as_json: bool) -> None:
    body: dict[str, Any] = {"user": user}
    if tenant:
        body["tenant"] = tenant
    _report(_call("POST", "/v1/tokens", body), as_json,
            lambda t: console.print(f"token for {t['user']} (shown once): {t['token']}"))


@tokens.command("revoke")
@click.argument("prefix")
def tokens_revoke(prefix: str) -> None:
    _call("DELETE", f"/v1/tokens/{prefix}")
    console.print(f"token {prefix}… revoked")
