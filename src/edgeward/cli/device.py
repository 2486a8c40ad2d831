"""``edgeward device``: what runs on the (virtual) gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from edgeward.board.virtual import VirtualBoard
from edgeward.cli.common import device_option, json_option
from edgeward.cli.device_apps import apps
from edgeward.cli.device_audit import audit
from edgeward.cli.output import byte_progress, console, emit_json, err_console
from edgeward.device import attest as attest_mod
from edgeward.device.agent import Agent, AgentSettings, remember_server_ca, verified_boot
from edgeward.device.apps.runtime import SYSTEM_BUS
from edgeward.device.boot.chain import boot as run_boot
from edgeward.device.boot.commit import commit_booted_slot
from edgeward.device.boot.report import BootReport
from edgeward.device.status import status as device_status
from edgeward.device.storage import recovery
from edgeward.errors import SecurityError, StateError
from edgeward.files import read_file, write_atomic


@click.group()
def device() -> None:
    """The gateway side: boot, attest, status."""


device.add_command(apps)
device.add_command(audit)


def print_boot(report: BootReport) -> None:
    table = Table(title=f"boot: {report.verdict} (slot {report.slot or '-'})")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("detail")
    for stage in report.stages:
        table.add_row(stage.name, "[green]ok[/]" if stage.ok else "[red]REFUSED[/]",
                      stage.detail)
    console.print(table)
    if report.fallback:
        console.print(f"[yellow]fallback:[/] {report.fallback}")
    console.print(f"register {report.register.hex()[:48]}…")


@device.command()
@device_option
@json_option
def boot(device: Path, as_json: bool) -> None:
    """Power on: ROM -> BL2 -> kernel -> OS stage. Exits non-zero on refusal."""
    board = VirtualBoard.open(device)
    with byte_progress("verifying rootfs") as update:
        report = run_boot(board, None if as_json else update)
    if as_json:
        emit_json({"device": str(device), **report.to_dict()})
    else:
        print_boot(report)
    if report.refused_stage:
        click.echo(f"edgeward: error: boot refused at {report.refused_stage}: {report.reason}",
                   err=True)
        raise SystemExit(5)


@device.command()
@device_option
@click.option("--nonce", required=True, help="The verifier's fresh nonce (hex, 16-64 bytes).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the signed quote to this file.")
@json_option
def attest(device: Path, nonce: str, out: Path | None, as_json: bool) -> None:
    """Sign a quote of this boot's measurements with the device identity key."""
    board = VirtualBoard.open(device)
    quote, envelope = attest_mod.quote(board, attest_mod.parse_nonce(nonce))
    if out is not None:
        write_atomic(out, envelope)
    if as_json:
        emit_json({"serial": quote.serial, "nonce": quote.nonce.hex(),
                   "register": quote.register.hex(), "slot": quote.slot,
                   "events": [e.to_dict() for e in quote.events],
                   "quote": json.loads(envelope)})
        return
    console.print(f"quote for [bold]{quote.serial}[/] slot {quote.slot}, "
                  f"register {quote.register.hex()[:32]}…, {len(quote.events)} events")
    if out is None:
        click.echo(envelope.decode())


@device.command()
@device_option
@json_option
def status(device: Path, as_json: bool) -> None:
    """Identity, fuses, slots and the last boot of a gateway."""
    info = device_status(VirtualBoard.open(device))
    if as_json:
        emit_json(info)
        return
    _print_status(info)


def _print_status(info: dict[str, Any]) -> None:
    console.print(f"[bold]{info['serial'] or '(no identity)'}[/]  model {info['model'] or '-'}")
    fuses = info["fuses"]
    console.print(f"  fuses: security version {fuses['security_version']}, debug "
                  f"{'disabled' if fuses['debug_disable'] else '[red]OPEN[/]'}, "
                  f"HUK {'burnt' if fuses['huk_burnt'] else 'absent'}")
    env = info["boot_env"] or {}
    console.print(f"  boot env: active {env.get('active')}, try_boot {env.get('try_boot')}, "
                  f"boot count {env.get('boot_count')}/{env.get('boot_limit')}")
    for slot, version in info["slots"].items():
        console.print(f"  slot {slot}: {version or 'empty'}")
    last = info["last_boot"]
    console.print(f"  last boot: {last['verdict'] if last else 'none this power cycle'}")
    data = info["data_area"]
    if not data["formatted"]:
        console.print("  data area: [red]missing[/]")
    elif data["unlocked"]:
        console.print(f"  data area: unlocked ({data['encryption']}), "
                      f"{len(data['app_folders'])} app folder(s), each under its own key; "
                      f"key sealed {data['key_sealed']}; recovery key {data['recovery_key']}")
    else:
        console.print("  data area: locked (only a verified boot or the recovery key "
                      "opens it)")


@device.command()
@device_option
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file holding the recovery key (else it is read from stdin).")
@json_option
def recover(device: Path, key_file: Path | None, as_json: bool) -> None:
    """Open the data area with its recovery key, without a verified boot.

    The key comes from the fleet server (`edgeward fleet recovery-key SERIAL`, tenant
    admins only, audited). The identity key stays sealed: the gateway cannot attest or
    reach the server until it boots verified again.
    """
    board = VirtualBoard.open(device)
    text = (read_file(key_file, "recovery key", 4096).decode(errors="replace")
            if key_file is not None else click.get_text_stream("stdin").read(4096))
    recovery.recover(board, text)
    if as_json:
        emit_json({"device": str(device), "unlocked": True, "mount": str(board.data_mount)})
    else:
        console.print(f"data area unlocked at {board.data_mount} with the recovery key; "
                      "the identity key stays sealed")


@device.command("power-off")
@device_option
def power_off(device: Path) -> None:
    """Cut the power: RAM, opened keys and the data area's mount are gone."""
    VirtualBoard.open(device).power_off()
    console.print(f"{device}: powered off (data area locked)")


@device.command()
@device_option
def commit(device: Path) -> None:
    """Mark the slot booted on trial as good (what a passing health check does).

    Burns the fused security version up to the committed release's.
    """
    done = commit_booted_slot(VirtualBoard.open(device))
    console.print(f"slot {done.slot} committed"
                  + (f"; security version fused at {done.security_version}" if done.burnt
                     else ""))


@device.command()
@device_option
@click.option("--server", required=True, help="Fleet server URL, e.g. https://fleet:8443.")
@click.option("--server-ca", type=click.Path(dir_okay=False, path_type=Path),
              help="The server's CA certificate (needed once; kept on the device).")
@click.option("--interval", default=30.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds between heartbeats.")
@click.option("--once", is_flag=True, help="Enrol, attest, send one heartbeat, exit.")
@click.option("--update-every", default=900.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between OS update and app checks (0: never).")
@click.option("--system-bus", default=SYSTEM_BUS, show_default=True,
              help="The D-Bus the apps' bluez and network-manager interfaces filter.")
@click.option("--no-apps", is_flag=True, help="Do not run the installed apps.")
@click.option("--telemetry-every", default=30.0, show_default=True,
              type=click.FloatRange(0), help="Seconds between telemetry reports (metrics, "
              "listening ports, remote hosts); 0: no monitoring (no events, logs, audits).")
@click.option("--audit-every", default=86400.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between hardening audits sent to the server (0: never).")
@click.option("--auth-log", type=click.Path(dir_okay=False, path_type=Path),
              help="The system's authentication log (e.g. /var/log/auth.log): failed "
                   "logins in it are reported at once. The edgeward OS has no login.")
@json_option
def agent(device: Path, server: str, server_ca: Path | None, interval: float, once: bool,
          update_every: float, system_bus: str, no_apps: bool, telemetry_every: float,
          audit_every: float, auth_log: Path | None, as_json: bool) -> None:
    """Run the gateway agent: enrol, attest, heartbeat, apply OS updates (TUF, A/B) in the
    maintenance window, commit or roll back after a trial boot; install the apps the
    group is assigned, run their daemons confined and report every denial; send
    telemetry, security events, logs and hardening audits; carry out operators' orders
    (stop an app, cut its network, quarantine); retry while the server is away."""
    board = VirtualBoard.open(device)
    verified_boot(board)
    if server_ca is not None:
        remember_server_ca(board, server_ca)
    say = (lambda _: None) if as_json else (lambda m: err_console.print(f"agent: {m}"))
    runner = Agent(board, AgentSettings(server, interval=interval, once=once,
                                        update_every=update_every, apps=not no_apps,
                                        system_bus=system_bus,
                                        telemetry_every=telemetry_every,
                                        audit_every=audit_every, auth_log=auth_log), say)
    runner.install_signal_handlers()
    state = runner.run()
    if as_json:
        emit_json({"enrolled": state.enrolled, "attestation": state.attestation,
                   "heartbeats": state.heartbeats, "last_error": state.last_error or None,
                   "updates": state.updates})


@device.command()
@device_option
@click.option("--server", required=True, help="Fleet server URL, e.g. https://fleet:8443.")
@click.option("--now", "force", is_flag=True,
              help="Install now, outside the maintenance window (and retry a failed version).")
@click.option("--version", "version",
              help="Install this release, whatever the server's desired state (TUF and the "
                   "fused security version still decide).")
@json_option
def update(device: Path, server: str, force: bool, version: str | None,
           as_json: bool) -> None:
    """Check for an OS update once and apply it: download through TUF, write the inactive
    slot, verify, try-boot, health check, commit — or roll back. Exit 0 unless refused."""
    board = VirtualBoard.open(device)
    say = (lambda _: None) if as_json else (lambda m: err_console.print(f"update: {m}"))
    runner = Agent(board, AgentSettings(server), say)
    done = runner.updater().after_boot()
    if done.action != "none":
        outcome = done
    elif version is not None:
        outcome = runner.updater().install_version(version)
    else:
        outcome = runner.updater().check(force)
    if as_json:
        emit_json(outcome.to_dict())
    else:
        console.print(f"{outcome.action}"
                      + (f" {outcome.version}" if outcome.version else "")
                      + (f": {outcome.detail}" if outcome.detail else ""))
    if outcome.action in ("refused", "failed"):
        raise SecurityError(f"update {outcome.version} {outcome.action}: {outcome.detail}") \
            if outcome.action == "refused" else StateError(
                f"update {outcome.version} failed: {outcome.detail}")
