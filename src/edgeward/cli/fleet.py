"""``edgeward fleet``: the operator's view of the fleet, over the server's API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click
from rich.table import Table

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.fleet_alerts import actions, alerts, remediate
from edgeward.cli.fleet_apps import apps, events
from edgeward.cli.fleet_findings import findings
from edgeward.cli.fleet_logs import logs
from edgeward.cli.fleet_rules import rules
from edgeward.cli.fleet_secrets import credentials, recovery_key, secrets
from edgeward.cli.output import console, report
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


@click.group()
def fleet() -> None:
    """Operate the fleet: gateways, tenants, users, tokens, secrets, audit (over the API)."""


fleet.add_command(events)
fleet.add_command(apps)
fleet.add_command(secrets)
fleet.add_command(recovery_key)
fleet.add_command(credentials)
fleet.add_command(alerts)
fleet.add_command(remediate)
fleet.add_command(actions)
fleet.add_command(findings)
fleet.add_command(logs)
fleet.add_command(rules)


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
    report(me, as_json, lambda m: console.print(
        f"logged in to {server} as {m['tenant']}/{m['user']} ({m['role']})"))


@fleet.command()
@json_option
def whoami(as_json: bool) -> None:
    """Who the saved token belongs to, and what it may do."""
    report(_call("GET", "/v1/me"), as_json, lambda m: console.print(
        f"{m['tenant']}/{m['user']} ({m['role']}): {', '.join(m['actions'])}"))


GATEWAY_COLUMNS = ["serial", "model", "status", "attestation", "slot", "last_seen_at"]


@fleet.command()
@json_option
def gateways(as_json: bool) -> None:
    """List the tenant's gateways: status, attestation, slot, last seen."""
    report(_call("GET", "/v1/gateways"), as_json,
            lambda rows: _table("gateways", rows, GATEWAY_COLUMNS))


@fleet.command()
@click.argument("serial")
@json_option
def show(serial: str, as_json: bool) -> None:
    """One gateway in full."""
    def render(g: dict[str, Any]) -> None:
        for key, value in g.items():
            console.print(f"{key:20} {value}")

    report(_call("GET", f"/v1/gateways/{serial}"), as_json, render)


@fleet.command()
@click.argument("serial")
@json_option
def revoke(serial: str, as_json: bool) -> None:
    """Revoke a gateway: its certificate is refused from now on."""
    report(_call("POST", f"/v1/gateways/{serial}/revoke"), as_json,
            lambda g: console.print(f"{g['serial']} revoked"))


@fleet.command()
@click.argument("serial")
@click.option("--tenant", required=True)
@json_option
def assign(serial: str, tenant: str, as_json: bool) -> None:
    """(Platform admin) hand an enrolled gateway to a tenant."""
    report(_call("POST", f"/v1/gateways/{serial}/assign", {"tenant": tenant}), as_json,
            lambda g: console.print(f"{g['serial']} assigned to {tenant}"))


@fleet.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
def audit(limit: int, as_json: bool) -> None:
    """The tenant's audit log, newest first."""
    report(_call("GET", f"/v1/audit?limit={limit}"), as_json,
            lambda rows: _table("audit log", rows, ["at", "actor", "action", "target"]))


@fleet.group()
def tenants() -> None:
    """(Platform admin) tenants."""


@tenants.command("create")
@click.argument("name")
@json_option
def tenants_create(name: str, as_json: bool) -> None:
    report(_call("POST", "/v1/tenants", {"name": name}), as_json,
            lambda t: console.print(f"tenant {t['name']} created"))


@fleet.group()
def users() -> None:
    """Users of the tenant."""


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    report(_call("GET", "/v1/users"), as_json,
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
    report(_call("POST", "/v1/users", body), as_json,
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
    report(_call("POST", "/v1/tokens", body), as_json,
            lambda t: console.print(f"token for {t['user']} (shown once): {t['token']}"))


@tokens.command("revoke")
@click.argument("prefix")
def tokens_revoke(prefix: str) -> None:
    _call("DELETE", f"/v1/tokens/{prefix}")
    console.print(f"token {prefix}… revoked")


@fleet.group()
def groups() -> None:
    """Gateway groups: update channel, pinned version, window, automatic or not."""


GROUP_COLUMNS = ["name", "channel", "pinned_version", "window", "auto_update", "gateways"]
TENANT_HELP = "(Platform admin) another tenant's groups."


def _with_tenant(path: str, tenant: str | None) -> str:
    return f"{path}?{urlencode({'tenant': tenant})}" if tenant else path


def _show_group(g: dict[str, Any]) -> None:
    console.print(f"group {g['ref']}: channel {g['channel']}, "
                  f"{'pinned to ' + g['pinned_version'] if g['pinned_version'] else 'not pinned'}"
                  f", window {g['window'] or 'any time'}, "
                  f"{'automatic' if g['auto_update'] else 'manual'}")


@groups.command("list")
@click.option("--tenant", help=TENANT_HELP)
@json_option
def groups_list(tenant: str | None, as_json: bool) -> None:
    report(_call("GET", _with_tenant("/v1/groups", tenant)), as_json,
            lambda rows: _table("groups", rows, GROUP_COLUMNS))


@groups.command("create")
@click.argument("name")
@click.option("--channel", type=click.Choice(["stable", "candidate", "beta", "edge"]),
              default="stable", show_default=True)
@click.option("--pin", "pinned_version", help="Stay on this release version.")
@click.option("--window", default="", help="Update window HH:MM-HH:MM (UTC); default any time.")
@click.option("--manual", is_flag=True, help="Do not install updates automatically.")
@click.option("--tenant", help=TENANT_HELP)
@json_option
def groups_create(name: str, channel: str, pinned_version: str | None, window: str,
                  manual: bool, tenant: str | None, as_json: bool) -> None:
    body: dict[str, Any] = {"name": name, "channel": channel, "window": window,
                            "auto_update": not manual, "pinned_version": pinned_version}
    if tenant:
        body["tenant"] = tenant
    report(_call("POST", "/v1/groups", body), as_json, _show_group)


@groups.command("set")
@click.argument("name")
@click.option("--channel", type=click.Choice(["stable", "candidate", "beta", "edge"]))
@click.option("--pin", "pinned_version", help="Stay on this release version.")
@click.option("--unpin", is_flag=True, help="Follow the channel again.")
@click.option("--window", help="Update window HH:MM-HH:MM (UTC); '' for any time.")
@click.option("--auto/--manual", "auto_update", default=None,
              help="Install updates automatically, or not.")
@click.option("--tenant", help=TENANT_HELP)
@json_option
def groups_set(name: str, channel: str | None, pinned_version: str | None, unpin: bool,
               window: str | None, auto_update: bool | None, tenant: str | None,
               as_json: bool) -> None:
    """Change some settings of a group (the others stay)."""
    if unpin and pinned_version:
        raise InputError("give --pin or --unpin, not both")
    body: dict[str, Any] = {k: v for k, v in (("channel", channel), ("window", window),
                                              ("auto_update", auto_update),
                                              ("pinned_version", pinned_version),
                                              ("tenant", tenant)) if v is not None}
    if unpin:
        body["pinned_version"] = None
    report(_call("PATCH", f"/v1/groups/{quote(name, safe='')}", body), as_json,
            _show_group)


@groups.command("assign")
@click.argument("name")
@click.argument("serials", nargs=-1, required=True)
@click.option("--tenant", help=TENANT_HELP)
def groups_assign(name: str, serials: tuple[str, ...], tenant: str | None) -> None:
    """Put gateways into group NAME (out of any other)."""
    for serial in serials:
        body: dict[str, Any] = {"serial": serial, **({"tenant": tenant} if tenant else {})}
        _call("POST", f"/v1/groups/{quote(name, safe='')}/gateways", body)
        console.print(f"{serial} is in group {name}")


@groups.command("remove")
@click.argument("name")
@click.argument("serials", nargs=-1, required=True)
@click.option("--tenant", help=TENANT_HELP)
def groups_remove(name: str, serials: tuple[str, ...], tenant: str | None) -> None:
    """Take gateways out of group NAME (back to the default policy)."""
    for serial in serials:
        _call("DELETE", _with_tenant(
            f"/v1/groups/{quote(name, safe='')}/gateways/{quote(serial, safe='')}", tenant))
        console.print(f"{serial} left group {name}")


@groups.command("delete")
@click.argument("name")
@click.option("--tenant", help=TENANT_HELP)
def groups_delete(name: str, tenant: str | None) -> None:
    """Delete a group; its gateways follow the default policy."""
    _call("DELETE", _with_tenant(f"/v1/groups/{quote(name, safe='')}", tenant))
    console.print(f"group {name} deleted")


@fleet.command()
@click.option("--model", help="Only this gateway model.")
@click.option("--channel", type=click.Choice(["stable", "candidate", "beta", "edge"]),
              help="What a gateway following this channel may take.")
@click.option("--yanked", is_flag=True, help="Include releases no longer signed.")
@json_option
def releases(model: str | None, channel: str | None, yanked: bool, as_json: bool) -> None:
    """Published OS releases, newest first."""
    query = urlencode({k: v for k, v in (("model", model), ("channel", channel),
                                         ("yanked", "true" if yanked else None)) if v})
    rows = _call("GET", "/v1/releases" + (f"?{query}" if query else ""))
    report(rows, as_json, lambda found: _table("releases", [
        {**r, "kernel": r["kernel"]["path"], "delta": "yes" if r["delta"] else "-"}
        for r in found], ["model", "version", "channel", "security_version", "seq",
                          "published_at", "yanked_at", "delta"]))
