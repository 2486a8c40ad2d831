"""``edgeward app``: apps as signed, read-only images."""

from __future__ import annotations

from pathlib import Path

import click

from edgeward.cli.common import json_option
from edgeward.cli.output import console, emit_json
from edgeward.release import appimage


@click.group()
def app() -> None:
    """Apps: build read-only images (publishing and install follow)."""


@app.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where to put the image (default: the current directory).")
@json_option
def build(directory: Path, out: Path | None, as_json: bool) -> None:
    """Check DIRECTORY/app.toml and the files, refuse hard-coded credentials, and make
    a reproducible squashfs image."""
    made = appimage.build(directory, out or Path.cwd())
    m = made.manifest
    if as_json:
        emit_json({"image": str(made.path), "sha384": made.sha384, "size": made.size,
                   "name": m.name, "version": m.version, "publisher": m.publisher,
                   "plugs": [str(p) for p in m.plugs],
                   "resources": {"memory": m.memory, "cpu": m.cpu, "pids": m.pids},
                   "egress": [f"{e.host}:{e.port}" for e in m.egress],
                   "programs": [{"name": p.name, "argv": list(p.argv), "daemon": p.daemon,
                                 "restart": p.restart} for p in m.programs]})
        return
    console.print(f"[bold green]built[/] {m.name} {m.version} ({m.publisher}): {made.path} "
                  f"({made.size} bytes, sha384 {made.sha384[:24]}…)")
    console.print(f"  plugs: {', '.join(str(p) for p in m.plugs) or 'none'}")
