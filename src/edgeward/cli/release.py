"""``edgeward release``: the TUF repository's offline side — keys, OS builds, publishing."""

from __future__ import annotations

from pathlib import Path

import click

from edgeward import operator_config
from edgeward.cli.common import json_option, now, passphrase_option, read_passphrase
from edgeward.cli.output import byte_progress, console, emit_json
from edgeward.errors import InputError
from edgeward.files import load_private_key, read_file
from edgeward.release import osbuild, publish, workspace
from edgeward.trust import keys
from edgeward.trust.targets import CHANNELS

workspace_option = click.option(
    "--keys", "keys_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="The release workspace (offline TUF keys, root.json).")


@click.group()
def release() -> None:
    """Signed updates: TUF keys, OS builds, publishing to channels, rollouts."""


@release.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--root-keys", default=3, show_default=True, type=click.IntRange(1, 9),
              help="Number of offline root keys.")
@click.option("--threshold", default=2, show_default=True, type=click.IntRange(1, 9),
              help="Root keys needed to sign a root.")
@passphrase_option
@json_option
def init(directory: Path, root_keys: int, threshold: int, passphrase_file: Path | None,
         as_json: bool) -> None:
    """Make the offline TUF keys and initialise the fleet server's repository.

    Uses the 'edgeward fleet login' of a platform admin. Root (threshold of
    offline keys), targets and the OS vendor's role are signed here; the server
    adds its online snapshot and timestamp keys. DIRECTORY/root.json is the trust
    anchor to ship in every rootfs ('factory init --tuf-root').
    """
    ws = workspace.create(directory, root_keys, threshold, read_passphrase(passphrase_file))
    with operator_config.load().client() as client:
        root = publish.init_repository(client, ws, now())
    report = {"workspace": str(directory), "root_version": root.signed.version,
              "threshold": threshold, "root_keys": root_keys, "root": str(ws.root_json)}
    if as_json:
        emit_json(report)
        return
    console.print(f"[bold green]repository initialised[/]: root v1, {threshold} of "
                  f"{root_keys} offline root keys; trust anchor {ws.root_json}")


@release.group()
def os() -> None:
    """OS and kernel releases: build and publish."""


@os.command()
@click.option("--factory", "factory_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Factory directory whose offline kernel key signs the bundle.")
@workspace_option
@click.option("--version", "version", required=True, help="Release version, e.g. 1.1.0.")
@click.option("--security-version", required=True, type=click.IntRange(0, 64),
              help="Security version (raise it for a security fix: no downgrade below it).")
@click.option("--model", help="Gateway model (default: the factory's).")
@click.option("--base", type=click.Path(file_okay=False, path_type=Path),
              help="The previous release's build (or the factory's release/): also make a "
                   "delta from it.")
@click.option("--tree", type=click.Path(file_okay=False, path_type=Path),
              help="A directory tree to include in the rootfs.")
@click.option("--file", "files", multiple=True, metavar="PATH=SOURCE",
              help="Put file SOURCE at PATH in the rootfs (repeatable).")
@click.option("--cmdline", help="Kernel command line (default: boot the verity root).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New directory for the build.")
@passphrase_option
@json_option
def build(factory_dir: Path, keys_dir: Path, version: str, security_version: int,
          model: str | None, base: Path | None, tree: Path | None, files: tuple[str, ...],
          cmdline: str | None, out: Path, passphrase_file: Path | None,
          as_json: bool) -> None:
    """Build and sign a kernel bundle + rootfs pair (with hash tree and TUF root)."""
    from edgeward.factory.station import open_factory
    from edgeward.release.osimage import CMDLINE

    passphrase = read_passphrase(passphrase_file)
    factory = open_factory(factory_dir)
    ws = workspace.open_workspace(keys_dir, passphrase)
    extra: dict[str, bytes] = {}
    for item in files:
        path, sep, source = item.partition("=")
        if not sep or not path or path.startswith("/") or ".." in path.split("/"):
            raise InputError(f"--file {item!r}: use PATH=SOURCE with a relative PATH")
        extra[path] = read_file(Path(source), f"--file {path}")
    kernel_key = load_private_key(factory_dir / "offline" / "kernel.key", passphrase,
                                  "kernel key")
    made = osbuild.build(out, version, security_version, model or factory.model, kernel_key,
                         read_file(ws.root_json, "TUF root"), base, tree, extra,
                         cmdline or CMDLINE)
    info = made.info()
    if as_json:
        emit_json({"build": str(out), **info})
        return
    console.print(f"[bold green]built[/] {info['model']} {version} (security version "
                  f"{security_version}) in {out}")
    console.print(f"  rootfs {made.rootfs.stat().st_size} bytes"
                  + (f", delta from {info['delta']['base_version']}: "
                     f"{info['delta']['size']} bytes" if "delta" in info else ""))


@os.command("publish")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@workspace_option
@click.option("--channel", type=click.Choice(CHANNELS), default="edge", show_default=True)
@click.option("--stage", "stages", multiple=True, metavar="N%|TENANT/GROUP[,…]",
              help="Rollout stages, in order (repeatable; default 10%, 50%, 100%).")
@click.option("--error-threshold", default=20, show_default=True, type=click.IntRange(0, 100),
              help="Halt the rollout when more than this percent of a stage fails.")
@passphrase_option
@json_option
def publish_cmd(build_dir: Path, keys_dir: Path, channel: str, stages: tuple[str, ...],
                error_threshold: int, passphrase_file: Path | None, as_json: bool) -> None:
    """Upload a build, sign it into the os role (offline key) on a channel, and start its
    staged rollout: it reaches gateways stage by stage, halting on failures."""
    ws = workspace.open_workspace(keys_dir, read_passphrase(passphrase_file))
    build_ = osbuild.Build(build_dir)
    total = sum(p.stat().st_size for p in (build_.kernel, build_.rootfs, build_.delta())
                if p is not None)
    with operator_config.load().client() as client, byte_progress("uploading") as bar:
        sent = [0]

        def step(n: int) -> None:
            sent[0] += n
            bar(sent[0], total)

        done = publish.publish_os(client, ws, build_, channel, now(), step,
                                  list(stages) or None, error_threshold)
    if as_json:
        emit_json({"model": done.model, "version": done.version, "channel": done.channel,
                   "security_version": done.security_version, "targets": done.targets,
                   "os_role_version": done.role_version})
        return
    console.print(f"[bold green]published[/] {done.model} {done.version} to {channel} "
                  f"(os role v{done.role_version})")
    for path, length in done.targets.items():
        console.print(f"  {path}  {length} bytes")


@release.command()
@click.argument("version")
@workspace_option
@click.option("--to", "channel", required=True, type=click.Choice(CHANNELS))
@click.option("--model", required=True, help="Gateway model of the release.")
@passphrase_option
@json_option
def promote(version: str, keys_dir: Path, channel: str, model: str,
            passphrase_file: Path | None, as_json: bool) -> None:
    """Move a release to another channel (re-signs the os role offline)."""
    ws = workspace.open_workspace(keys_dir, read_passphrase(passphrase_file))
    with operator_config.load().client() as client:
        role_version = publish.promote(client, ws, model, version, channel, now())
    if as_json:
        emit_json({"model": model, "version": version, "channel": channel,
                   "os_role_version": role_version})
        return
    console.print(f"{model} {version} is now on [bold]{channel}[/] (os role v{role_version})")


@release.group("keys")
def keys_group() -> None:
    """Rotate TUF keys; delegate apps/<tenant>/* to a tenant."""


@keys_group.command()
@click.argument("role")
@workspace_option
@passphrase_option
@json_option
def rotate(role: str, keys_dir: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Replace ROLE's key: root, targets, snapshot, timestamp, os or apps-<tenant>.

    A new root is signed by the old and the new root keys (a threshold of each);
    online keys are made on the server and take over once the root names them.
    """
    ws = workspace.open_workspace(keys_dir, read_passphrase(passphrase_file))
    with operator_config.load().client() as client:
        done = publish.rotate(client, ws, role, now())
    if as_json:
        emit_json(done)
        return
    for name, ids in done.items():
        console.print(f"{name}: new key {', '.join(i[:24] + '…' for i in ids)}")


@keys_group.command("add-tenant")
@click.argument("tenant")
@workspace_option
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The tenant's own public key (else one is made in the workspace).")
@passphrase_option
@json_option
def add_tenant(tenant: str, keys_dir: Path, public_key: Path | None,
               passphrase_file: Path | None, as_json: bool) -> None:
    """Delegate apps/TENANT/* to the tenant's publisher key (terminating)."""
    ws = workspace.open_workspace(keys_dir, read_passphrase(passphrase_file))
    public = keys.load_public(read_file(public_key, "public key")) if public_key else None
    with operator_config.load().client() as client:
        role = publish.add_tenant(client, ws, tenant, public, now())
    if as_json:
        emit_json({"tenant": tenant, "role": role})
        return
    console.print(f"apps/{tenant}/* delegated to role {role}")


@release.command()
@json_option
def status(as_json: bool) -> None:
    """The repository's roles: versions and expiry."""
    with operator_config.load().client() as client:
        info = client.call("GET", "/v1/repository")
    if as_json:
        emit_json(info)
        return
    if not info["initialised"]:
        console.print("repository not initialised: run 'edgeward release init'")
        return
    for role, meta in sorted(info["roles"].items()):
        console.print(f"  {role:12} v{meta['version']:<5} expires {meta['expires']}")

