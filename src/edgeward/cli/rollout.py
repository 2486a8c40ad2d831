"""``rollout``: staged rollouts of OS releases, over the fleet server's API.

Mounted as ``edgeward release rollout``. Starting, pausing, resuming and
aborting need a platform admin's token; any operator may list and show.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import click
from rich.table import Table

from edgeward import operator_config
from edgeward.cli.common import json_option
from edgeward.cli.output import console, report
from edgeward.errors import InputError

BAR = 16  # characters of a stage's progress bar


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with operator_config.load().client() as client:
        return client.call(method, path, body)


def parse_stage(text: str) -> dict[str, Any]:
    """``10`` or ``10%``: a share of the fleet; ``tenant/group[,tenant/group...]``: groups."""
    text = text.strip()
    if "/" in text:
        return {"groups": [g.strip() for g in text.split(",") if g.strip()]}
    number = text.removesuffix("%")
    if not number.isdigit():
        raise InputError(f"--stage {text!r}: give a percent (10%) or groups (tenant/group)")
    return {"percent": int(number)}


def bar(stage: dict[str, Any]) -> str:
    targeted = stage["targeted"] or 1
    done = round(BAR * stage["succeeded"] / targeted)
    failed = round(BAR * stage["failed"] / targeted)
    rest = BAR - done - failed if stage["targeted"] else BAR
    return f"[green]{'█' * done}[/][red]{'█' * failed}[/][dim]{'░' * max(rest, 0)}[/]"


def stage_name(stage: dict[str, Any]) -> str:
    if "percent" in stage:
        return f"{stage['percent']}%"
    return ", ".join(stage.get("groups") or ["(other tenants' groups)"])


def show_rollout(r: dict[str, Any]) -> None:
    console.print(f"rollout {r['id']}: {r['model']} {r['version']} [bold]{r['state']}[/] "
                  f"(stage {r['current_stage'] + 1} of {len(r['stages'])}; errors over "
                  f"{r['error_threshold']}% halt, {r['success_threshold']}% must commit)")
    if r.get("halted_reason"):
        console.print(f"[red]halted: {r['halted_reason']}[/]")
    table = Table(caption="> the current stage; bar: committed, failed, pending")
    table.add_column("stage", overflow="fold")
    table.add_column("progress", no_wrap=True, min_width=BAR)
    for column in ("committed", "failed", "pending"):
        table.add_column(column, justify="right")
    for number, stage in enumerate(r["stages"], 1):
        mark = ">" if number == r["current_stage"] + 1 else " "
        table.add_row(f"{mark}{number}. {stage_name(stage)}", bar(stage),
                      f"{stage['succeeded']}/{stage['targeted']}", str(stage["failed"]),
                      str(stage["pending"]))
    console.print(table)


def show_list(rows: list[dict[str, Any]]) -> None:
    table = Table(title="rollouts")
    for column in ("id", "model", "version", "state", "stage", "succeeded", "failed",
                   "pending", "updated"):
        table.add_column(column)
    for r in rows:
        totals = r["totals"]
        table.add_row(str(r["id"]), r["model"], r["version"], r["state"],
                      f"{r['current_stage'] + 1}/{len(r['stages'])}",
                      str(totals["succeeded"]), str(totals["failed"]), str(totals["pending"]),
                      r["updated_at"] or "-")
    console.print(table)


@click.group()
def rollout() -> None:
    """Staged rollouts of OS releases: start, watch, pause, resume, abort."""


@rollout.command("create")
@click.argument("model")
@click.argument("version")
@click.option("--stage", "stage_specs", multiple=True, required=True,
              help="A stage, in order: a cumulative percent (10%) or groups "
                   "(tenant/group[,tenant/group]). Repeat: --stage 10% --stage acme/lobby "
                   "--stage 100%.")
@click.option("--error-threshold", type=click.IntRange(0, 100), default=20, show_default=True,
              help="Halt when more than this percent of gateways targeted so far failed.")
@click.option("--success-threshold", type=click.IntRange(1, 100), default=100,
              show_default=True,
              help="Percent of gateways targeted so far that must commit before the next "
                   "stage.")
@click.option("--min-stage-minutes", type=click.IntRange(0, 43200),
              help="Keep each stage at least this long.")
@json_option
def create(model: str, version: str, stage_specs: tuple[str, ...], error_threshold: int,
           success_threshold: int, min_stage_minutes: int | None, as_json: bool) -> None:
    """(Platform admin) roll out a published release of MODEL, stage by stage."""
    body: dict[str, Any] = {"model": model, "version": version,
                            "stages": [parse_stage(s) for s in stage_specs],
                            "error_threshold": error_threshold,
                            "success_threshold": success_threshold}
    if min_stage_minutes is not None:
        body["min_stage_minutes"] = min_stage_minutes
    report(_call("POST", "/v1/rollouts", body), as_json, show_rollout)


@rollout.command("list")
@click.option("--state", type=click.Choice(["running", "paused", "halted", "aborted",
                                            "finished"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@json_option
def list_(state: str | None, limit: int, as_json: bool) -> None:
    """Rollouts, newest first, with their progress."""
    query = urlencode({"limit": limit, **({"state": state} if state else {})})
    report(_call("GET", f"/v1/rollouts?{query}"), as_json, show_list)


@rollout.command("show")
@click.argument("rollout_id", type=click.IntRange(1))
@json_option
def show(rollout_id: int, as_json: bool) -> None:
    """One rollout, stage by stage: targeted, succeeded, failed, pending."""
    report(_call("GET", f"/v1/rollouts/{rollout_id}"), as_json, show_rollout)


def _action(name: str, help_text: str) -> None:
    @rollout.command(name, help=help_text)
    @click.argument("rollout_id", type=click.IntRange(1))
    @json_option
    def command(rollout_id: int, as_json: bool) -> None:
        report(_call("POST", f"/v1/rollouts/{rollout_id}/{name}"), as_json,
                lambda r: console.print(f"rollout {r['id']} is {r['state']}"))


_action("pause", "(Platform admin) stop advancing to further stages.")
_action("resume", "(Platform admin) let a paused rollout advance again.")
_action("abort", "(Platform admin) offer the release to no new gateway.")
