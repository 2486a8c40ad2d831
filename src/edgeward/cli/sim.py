"""``edgeward sim``: a simulated fleet, attacked and confounded, through the detectors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edgeward.cli.common import json_option, passphrase_option, read_passphrase
from edgeward.cli.output import console, err_console, report
from edgeward.errors import InputError
from edgeward.factory.station import open_factory
from edgeward.sim.episodes import ATTACKS, CONFOUNDERS
from edgeward.sim.online import PACES, run_online
from edgeward.sim.runner import Progress as Tick
from edgeward.sim.runner import Scenario, run
from edgeward.sim.summary import summarise

LONG = 200_000  # reports from which a run shows a progress bar


@click.command()
@click.option("--gateways", type=click.IntRange(1, 100_000), default=100, show_default=True,
              help="Simulated gateways.")
@click.option("--hours", type=click.FloatRange(0.1, 336), default=6.0, show_default=True,
              help="Simulated hours that are scored.")
@click.option("--interval", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Seconds between two reports of a gateway.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Same seed, same fleet, same attacks, same outcome.")
@click.option("--warmup", type=click.FloatRange(0, 1440), default=60.0, show_default=True,
              help="Minutes of normal operation before the scored span (from a cold start: "
                   "what is raised then is counted apart).")
@click.option("--attack", "attacks", multiple=True, type=click.Choice([*ATTACKS, "all"]),
              help="Inject this attack (repeat for several; 'all': one of each kind).")
@click.option("--instances", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Attacks of each kind given, each on its own gateway at a random time.")
@click.option("--confounder", "confounders", multiple=True,
              type=click.Choice([*CONFOUNDERS, "all"]),
              help="Inject this benign event (repeat for several; 'all': each of them).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes (cohorts are simulated apart).")
@click.option("--server", help="Send to this fleet server instead (online mode).")
@click.option("--ca", type=click.Path(dir_okay=False, path_type=Path),
              help="Online: the server's CA certificate (DATA/tls/server-ca.pem).")
@click.option("--factory", "factory_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Online: the factory directory whose CA and station make the "
                   "simulated gateways' identities.")
@passphrase_option
@click.option("--pace", type=click.Choice(PACES), default="live", show_default=True,
              help="Online: the scored span in real time from now (live), or all of it "
                   "at once, ending now (fast). The warm-up is always sent at once.")
@json_option
def sim(gateways: int, hours: float, interval: float, seed: int, warmup: float,
        attacks: tuple[str, ...], instances: int, confounders: tuple[str, ...],
        workers: int, server: str | None, ca: Path | None, factory_dir: Path | None,
        passphrase_file: Path | None, pace: str, as_json: bool) -> None:
    """Simulate a fleet offline and score the fleet server's detectors on it.

    N virtual gateways in four cohorts (model and apps) report every INTERVAL seconds:
    daily cycles, per-app load, heavy-tailed traffic, failed logins now and then. The
    attacks given are injected on gateways of their own at random times (miner,
    beacon, backdoor, bruteforce, exfil, clone), and the confounders given too
    (rollout, reboot-storm, busy-hour).

    Offline (the default), every report goes through the fleet server's real
    detectors and through an anchor-like one (fixed thresholds over 5-minute
    windows); the report gives, per attack, when and by which signal each caught it,
    and the false alarms of each. Online (--server), the gateways get identities from
    the factory, enrol, and send their check-ins, reports and events to the server,
    whose alerts tell the rest; the report lists what was injected where and when.

    \b
    Examples:
      edgeward sim --gateways 200 --hours 6 --attack all --confounder all
      edgeward sim --gateways 1000 --hours 24 --attack miner --instances 5 --json
      edgeward sim --server https://fleet:8443 --ca server-ca.pem --factory factory \\
          --gateways 20 --hours 0.5 --attack miner
    """
    chosen = ATTACKS if "all" in attacks else tuple(dict.fromkeys(attacks))
    scenario = Scenario(gateways=gateways, hours=hours, interval=interval, seed=seed,
                        warmup=warmup * 60.0,
                        attacks=tuple((kind, instances) for kind in chosen),
                        confounders=CONFOUNDERS if "all" in confounders
                        else tuple(dict.fromkeys(confounders)))
    if server is not None:
        if ca is None or factory_dir is None:
            raise InputError("online mode (--server) needs --ca and --factory")
        factory = open_factory(factory_dir)
        with tempfile.TemporaryDirectory(prefix="edgeward-sim-") as folder, \
                _progress(True, "steps") as tick:
            result = run_online(scenario, server, ca, factory, read_passphrase(passphrase_file),
                                Path(folder), pace, tick)
        report(result, as_json, _show_online)
        return
    with _progress(gateways * scenario.steps >= LONG, "reports") as tick:
        outcome = run(scenario, workers=min(workers, os.cpu_count() or 1), progress=tick)
    report(summarise(outcome), as_json, _show)


@contextmanager
def _progress(shown: bool, unit: str) -> Iterator[Tick | None]:
    if not shown or not err_console.is_terminal:
        yield None
        return
    with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(unit), TimeRemainingColumn(), console=err_console,
                  transient=True) as progress:
        task = progress.add_task("simulating", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield tick


def _seconds(value: float | None) -> str:
    if value is None:
        return "missed"
    if value < 10:
        return f"{value:.1f} s"
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.0f} min"


def _show(result: dict[str, Any]) -> None:
    s = result["scenario"]
    console.print(f"{s['gateways']} gateways, {s['hours']:g} h scored after a "
                  f"{s['warmup_s'] / 60:g}-minute warm-up, a report every "
                  f"{s['interval_s']:g} s (seed {s['seed']}): {result['reports']} reports in "
                  f"{result['wall_s']:.1f} s")
    mine, theirs = result["edgeward"], result["anchor"]
    if mine["detections"]:
        table = Table(title="Attacks (time to detect, and the first signal)")
        for column in ("attack", "gateway", "start", "edgeward", "anchor-like"):
            table.add_column(column)
        for ours, anchor in zip(mine["detections"], theirs["detections"], strict=True):
            table.add_row(ours["attack"], ours["gateway"], f"+{ours['start_s'] / 60:.0f} min",
                          _found(ours), _found(anchor))
        console.print(table)
        table = Table(title="Per attack class: median, max, missed")
        for column in ("class", "instances", "edgeward", "anchor-like"):
            table.add_column(column)
        for kind, figures in mine["attacks"].items():
            table.add_row(kind, str(figures["instances"]), _figures(figures),
                          _figures(theirs["attacks"][kind]))
        console.print(table)
    for name, figures in (("edgeward", mine), ("anchor-like", theirs)):
        console.print(f"False alarms, {name}: {figures['false_alarms']} "
                      f"({figures['false_alarms_per_gateway_day']} per gateway-day): "
                      f"{_counts(figures['false_alarms_by_kind'])}; in confounders: "
                      f"{_counts(figures['false_alarms_by_confounder'])}; in the warm-up "
                      f"(not counted): {figures['cold_start_alerts']}")
    notices = result["notices"]
    console.print(f"Notices instead of alerts: {notices['cohort_shift']} cohort shifts "
                  f"({_counts(notices['cohort_shift_by_metric'])}), "
                  f"{notices['after_change']} anomalies after a boot or release change")


def _show_online(result: dict[str, Any]) -> None:
    console.print(f"{result['gateways']} simulated gateways (SIM-{result['run']}-*) sent to "
                  f"{result['server']}, scored span {result['scored_from']} to "
                  f"{result['scored_until']}: {_counts(result['sent'])}")
    if result["errors"]:
        console.print(f"[red]refused or failed:[/red] {_counts(result['errors'])}")
    table = Table(title="Attacks injected (compare with 'edgeward fleet alerts')")
    for column in ("attack", "gateway", "start", "end"):
        table.add_column(column)
    for a in result["attacks"]:
        table.add_row(a["attack"], a["gateway"], a["start"], a["end"])
    console.print(table)
    if result["confounders"]:
        console.print(f"Confounders: {', '.join(result['confounders'])}")


def _figures(figures: dict[str, Any]) -> str:
    if figures["median_s"] is None:
        return f"all {figures['missed']} missed"
    return (f"{_seconds(figures['median_s'])}, {_seconds(figures['max_s'])}, "
            f"{figures['missed']} missed")


def _found(detection: dict[str, Any]) -> str:
    after = detection["detected_after_s"]
    return "missed" if after is None else f"{_seconds(after)} ({detection['signal']})"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"
