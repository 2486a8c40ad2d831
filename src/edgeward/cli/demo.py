"""``edgeward demo``."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgeward.cli.common import json_option
from edgeward.cli.output import console, emit_json, err_console
from edgeward.demo import DemoResult, run
from edgeward.demo_apps import AppStory
from edgeward.demo_monitoring import MonitorStory
from edgeward.demo_secrets import SecretStory
from edgeward.demo_updates import UpdateStory
from edgeward.errors import StateError


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to keep the factory and gateways (default: a new temp dir).")
@click.option("--serve", is_flag=True,
              help="Keep the fleet server and its dashboard up after the story (Ctrl-C ends).")
@json_option
def demo(directory: Path | None, serve: bool, as_json: bool) -> None:
    """The whole story on virtual gateways, with a summary at the end."""
    if directory is None:  # where the apps' users can reach their images
        directory = Path(tempfile.mkdtemp(prefix="edgeward-demo-", dir="/var/tmp"))
        directory.chmod(0o711)
    if directory.exists() and any(directory.iterdir()):
        raise StateError(f"{directory} is not empty: give the demo a new directory")
    say = err_console.print if as_json else console.print

    def hold(result: DemoResult) -> None:
        say(f"dashboard: {result.server}/ (sign in with the token in {result.operator_token};"
            f" the server's CA is {directory / 'server/tls/server-ca.pem'}); Ctrl-C ends")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()

    result = run(directory, say, hold if serve else None)
    if as_json:
        emit_json({"directory": str(directory), "ok": result.ok, "server": result.server,
                   "gateways": [g.to_dict() for g in result.gateways], "fleet": result.fleet,
                   "updates": result.updates.to_dict() if result.updates else None,
                   "apps": result.apps.to_dict() if result.apps else None,
                   "secrets": result.secrets.to_dict(),
                   "monitoring": result.monitoring.to_dict() if result.monitoring else None})
    # the summary for people: on stdout, or beside the JSON on stderr with the narration
    _summary(result, directory, err_console if as_json else console)
    if not result.ok:
        raise StateError("the demo did not go as it should: see the summary above")


def _summary(result: DemoResult, directory: Path, out: Console) -> None:
    table = Table(title="edgeward demo: summary")
    for column in ("gateway", "first boot", "attestation", "boot after tamper",
                   "refused at", "attestation after"):
        table.add_column(column)
    for g in result.gateways:
        table.add_row(g.serial, g.first_boot, g.attestation,
                      "[red]refused[/]" if g.after_tamper == "refused" else g.after_tamper,
                      g.refused_stage or "-", g.attestation_after.split(":")[0])
    out.print(table)
    for g in result.gateways:
        if g.reason:
            out.print(f"[bold]{g.serial}[/]: {g.reason}")
    out.print(f"fleet server was at {result.server}; as the tenant's operator sees "
              f"it: " + ", ".join(f"{g['serial']} {g['attestation']}"
                                  for g in result.fleet))
    silent = [g.serial for g in result.gateways if g.after_tamper == "refused"]
    out.print(f"{', '.join(silent)} went silent: without the identity key that only a "
              "verified boot opens it cannot reach the server; its last attestation "
              "goes stale")
    if result.updates is not None:
        _print_updates(result.updates, out)
    if result.apps is not None:
        _print_apps(result.apps, out)
    _print_secrets(result.secrets, out)
    if result.monitoring is not None:
        _print_monitoring(result.monitoring, out)
    out.print(f"dashboard was at {result.server}/ (sign in with the token in "
              f"{result.operator_token}); 'edgeward demo --serve' keeps it up")
    out.print(f"files kept in {directory} (server data in {directory / 'server'})")


def _print_updates(story: UpdateStory, out: Console) -> None:
    table = Table(title="signed updates")
    table.add_column("gateway")
    for chapter in (story.patch, story.bad, story.downgrade):
        table.add_column(chapter.version)
    table.add_column("running")
    colours = {"committed": "green", "rolled-back": "yellow", "refused": "red"}
    for serial in sorted(story.versions):
        cells = []
        for chapter in (story.patch, story.bad, story.downgrade):
            action = chapter.actions().get(serial, "not offered")
            colour = colours.get(action)
            cells.append(f"[{colour}]{action}[/]" if colour else action)
        table.add_row(serial, *cells, story.versions[serial])
    out.print(table)
    out.print(f"rollout of {story.patch.version}: {story.patch.rollout.get('state')}; "
              f"of {story.bad.version}: {story.bad.rollout.get('state')} "
              f"({story.bad.rollout.get('halted_reason') or '-'})")


def _print_secrets(story: SecretStory, out: Console) -> None:
    ok, bad = "[green]yes[/]", "[red]no[/]"
    table = Table(title=f"encryption at rest and secrets on {story.gateway}")
    table.add_column("check")
    table.add_column("result")
    table.add_row("minibar signed in with the key the server delivered",
                  f"{story.signed_in} reports" if story.signed_in else bad)
    table.add_row(f"plaintexts in the stolen flash ({story.flash_bytes >> 20} MiB of data)",
                  f"[red]{', '.join(story.found)}[/]" if story.found else
                  f"[green]none of {len(story.markers)}[/]")
    table.add_row("data area unlocked at the next boot, without a human",
                  ok if story.rebooted_unlocked else bad)
    table.add_row("a gateway that no longer boots, opened with its escrowed recovery key",
                  f"{story.recovered} (fetch audited: {story.recovery_audited})"
                  if story.recovered else bad)
    out.print(table)


def _print_monitoring(story: MonitorStory, out: Console) -> None:
    table = Table(title=f"a miner in weather on {story.gateway} (reports every "
                        f"{story.interval:g} s)")
    table.add_column("check")
    table.add_column("result")
    alert = story.alert
    table.add_row("alert on the dashboard",
                  f"[red]{alert.get('severity')}[/] {alert.get('detail')}" if alert
                  else "[red]none[/]")
    table.add_row("seconds from the attack to its first alert",
                  f"{story.first_alert_after} ({story.first_alert.get('kind')})"
                  if story.first_alert_after is not None else "-")
    table.add_row("seconds from the attack to the CPU alert",
                  f"{story.detected_after} ({story.detected_after / story.interval:.1f} "
                  "intervals)" if story.detected_after is not None else "-")
    table.add_row("the miner's own lines in the central logs",
                  "; ".join(line for line in story.logs if "xmrig" in line)[:160] or "none")
    table.add_row("refused in the sandbox", "; ".join(story.denials)[:160] or "-")
    table.add_row("app stopped from the alert", story.stopped or "-")
    out.print(table)


def _print_apps(story: AppStory, out: Console) -> None:
    table = Table(title=f"apps on {story.gateway}")
    for column in ("app", "publisher", "state", "granted", "starts without", "reported"):
        table.add_column(column)
    for name, app in sorted(story.apps.items()):
        events = story.events.get(name, [])
        count = sum(int(e.get("count", 1)) for e in events)
        kinds = ", ".join(sorted({e["kind"] for e in events}))
        table.add_row(name, app.get("publisher", ""), app.get("state", ""),
                      ", ".join(app.get("granted", [])) or "-",
                      ", ".join(app.get("withheld", [])) or "-",
                      f"[red]{count} ({kinds})[/]" if count else "[green]nothing[/]")
    out.print(table)
    out.print(f"minibar's cloud got {story.reports.get('minibar', 0)} stock reports while "
              "hvac was being refused next door")
    learnt = story.profile
    out.print(f"complain mode on {story.lab} learnt for hvac: plugs "
              f"{', '.join(learnt.get('interfaces', [])) or '-'}; egress "
              f"{', '.join(learnt.get('egress', [])) or '-'}; still denied: "
              f"{', '.join(d['what'] for d in learnt.get('denied', [])) or '-'}")
