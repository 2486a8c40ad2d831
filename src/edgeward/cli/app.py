"""``edgeward app``: apps as signed, read-only images."""

from __future__ import annotations

from pathlib import Path

import click

from edgeward import operator_config
from edgeward.cli.common import json_option, now, passphrase_option, read_passphrase
from edgeward.cli.output import console, emit_json
from edgeward.files import load_private_key
from edgeward.release import appimage
from edgeward.release.apppublish import publish_app


@click.group()
def app() -> None:
    """Apps: build read-only images and publish them through TUF."""


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


@app.command()
@click.argument("image", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--key", "key_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The tenant's publisher key (apps-<tenant>.key).")
@passphrase_option
@json_option
def publish(image: Path, key_file: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Sign IMAGE into its publisher's TUF role (apps-<tenant>) and upload it, with the
    'edgeward fleet login' of that tenant's admin."""
    key = load_private_key(key_file, read_passphrase(passphrase_file), "publisher key")
    with operator_config.load().client() as client:
        done = publish_app(client, key, image, now())
    if as_json:
        emit_json({"target": done.path, "length": done.length, "role": done.role,
                   "role_version": done.role_version})
        return
    console.print(f"[bold green]published[/] {done.path} ({done.length} bytes) in "
                  f"{done.role} v{done.role_version}")
