"""Apps through TUF: a tenant signs, the gateway installs revisions side by side, each
mounted read-only, switches atomically, rolls back, removes cleanly; a tampered or
unsigned image is never mounted."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.device.agent import Agent
from edgeward.device.apps import reconcile, store, users
from edgeward.errors import InputError, IntegrityError, SecurityError
from edgeward.release import appimage, publish
from edgeward.release.apppublish import publish_app
from tests.conftest import remove_scratch, require_root, scratch_dir
from tests.integration.test_cli import edgeward
from tests.updates.conftest import World

NOW = dt.datetime.now(dt.UTC)


def _needs_root() -> None:
    require_root("mounting app images (the agent's work)")


def _build(world: World, version: str) -> Path:
    source = world.tmp / f"minibar-{version}"
    (source / "bin").mkdir(parents=True)
    (source / "app.toml").write_text(
        f'name = "minibar"\nversion = "{version}"\npublisher = "acme"\nsummary = "Minibar"\n'
        '[daemons.server]\nexec = "bin/server"\n')
    server = source / "bin" / "server"
    server.write_text(f"#!/bin/sh\necho minibar {version}\n")
    server.chmod(0o755)
    return appimage.build(source, world.tmp / "images").path


def _publish(world: World, version: str) -> Path:
    image = _build(world, version)
    with world.admin() as client:
        publish_app(client, world.ws.key("apps-acme"), image, NOW)
    return image


class Gateway:
    """A gateway whose every install is a fresh TUF refresh, as each agent check is."""

    def __init__(self, agent: Agent) -> None:
        self.agent, self.board = agent, agent.board

    def install(self, tenant: str, name: str, version: str) -> store.Installed:
        tuf = self.agent.updater().tuf("a")
        try:
            return store.install(self.board, tuf, tenant, name, version)
        finally:
            tuf.close()


@pytest.fixture
def gw(world: World) -> Iterator[Gateway]:
    _needs_root()
    with world.admin() as client:
        publish.add_tenant(client, world.ws, "acme", None, NOW)
    gw = Gateway(world.gateway("gw-1"))
    try:
        yield gw
    finally:
        for name in store.installed(gw.board):
            store.remove(gw.board, name)


def test_revisions_side_by_side_switch_rollback_and_removal(world: World, gw: Gateway
                                                            ) -> None:
    board = gw.board
    _publish(world, "2.0.1")
    first = gw.install("acme", "minibar", "2.0.1")
    assert store.mounted(first.root) and (first.root / "bin" / "server").exists()
    assert first.manifest.version == "2.0.1"
    with pytest.raises(OSError):  # read-only
        (first.root / "bin" / "new").write_text("x")
    _publish(world, "2.0.2")
    second = gw.install("acme", "minibar", "2.0.2")
    assert store.current(board, "minibar").version == "2.0.2"
    assert store.mounted(first.root) and store.mounted(second.root)  # side by side
    assert store.rollback(board, "minibar") == "2.0.1"
    assert store.current(board, "minibar").version == "2.0.1"
    _publish(world, "2.0.3")
    base = store.apps_dir(board) / "minibar"
    (base / "logs").mkdir()  # the supervisor's, kept across revisions
    gw.install("acme", "minibar", "2.0.3")
    assert sorted(p.name for p in base.iterdir() if not p.is_symlink()) == [
        "2.0.1", "2.0.3", "data", "logs"]  # 2.0.2 (neither current nor previous) is gone
    assert not store.mounted(second.root)
    store.remove(board, "minibar")
    assert not base.exists() and not store.mounted(first.root)


def test_a_tampered_image_is_never_mounted(world: World, gw: Gateway) -> None:
    board = gw.board
    image = _publish(world, "2.0.1")
    blob = world.server.settings.data / "tuf" / "blobs" / hashlib.sha384(
        image.read_bytes()).hexdigest()
    genuine = blob.read_bytes()
    blob.write_bytes(genuine[:-1] + bytes([genuine[-1] ^ 1]))  # a mirror serving other bytes
    with pytest.raises(IntegrityError):
        gw.install("acme", "minibar", "2.0.1")
    folder = store.apps_dir(board) / "minibar" / "2.0.1"
    assert not (folder / "root").exists() or not store.mounted(folder / "root")
    assert not (folder / "image.squashfs").exists()
    blob.write_bytes(genuine)
    installed = gw.install("acme", "minibar", "2.0.1")
    store.unmount(installed.root)  # as at power-off; then the flash is altered
    data = bytearray((folder / "image.squashfs").read_bytes())
    data[len(data) // 2] ^= 1
    (folder / "image.squashfs").write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        gw.install("acme", "minibar", "2.0.1")
    assert not store.mounted(folder / "root")


def test_a_version_named_like_the_apps_own_folders_is_refused(world: World,
                                                             gw: Gateway) -> None:
    """``data`` (or ``logs``, ``run``...) as a version would have root write the image
    into the folder the app itself writes in."""
    for version in ("data", "run"):
        _publish(world, version)
        with pytest.raises(IntegrityError, match="reserved"):
            gw.install("acme", "minibar", version)
    assert not (store.apps_dir(gw.board) / "minibar" / "data" / store.IMAGE).exists()


def test_an_unsigned_app_is_refused(world: World, gw: Gateway) -> None:
    board = gw.board
    _publish(world, "2.0.1")
    with pytest.raises(SecurityError, match="not signed"):
        gw.install("acme", "minibar", "9.9.9")
    with pytest.raises(SecurityError, match="not signed"):
        gw.install("other", "minibar", "2.0.1")
    assert store.installed(board) == []


def test_a_tenant_publishes_its_app_from_the_cli(world: World) -> None:
    with world.admin() as client:
        publish.add_tenant(client, world.ws, "acme", None, NOW)
        tokens = {}
        for tenant in ("acme", "other"):
            client.call("POST", "/v1/tenants", {"name": tenant})
            client.call("POST", "/v1/users", {"name": "boss", "role": "admin",
                                              "tenant": tenant})
            tokens[tenant] = client.call("POST", "/v1/tokens",
                                         {"user": "boss", "tenant": tenant})["token"]
    image = _build(world, "2.0.1")
    key = world.ws.root / "keys" / "apps-acme.key"
    for tenant, token in tokens.items():
        env = {"EDGEWARD_CONFIG": str(world.tmp / f"op-{tenant}")}
        token_file = world.tmp / f"{tenant}.token"
        token_file.write_text(token)
        edgeward("fleet", "login", "--server", world.server.url, "--ca", world.ca,
                 "--token-file", token_file, env=env)
        result = edgeward("app", "publish", image, "--key", key, "--json", ok=False, env=env)
        if tenant == "acme":
            assert result.returncode == 0, result.stderr
            done = json.loads(result.stdout)
            assert done["target"] == "apps/acme/minibar/2.0.1/minibar_2.0.1.squashfs"
            assert done["role"] == "apps-acme"
        else:  # another tenant's admin cannot sign acme's role in, even holding its key
            assert result.returncode == 4 and "may publish only apps-other" in result.stderr


def test_a_group_runs_exactly_its_assigned_apps_with_what_is_granted(world: World,
                                                                     gw: Gateway) -> None:
    board = gw.board
    source = world.tmp / "hvac"
    (source / "bin").mkdir(parents=True)
    (source / "app.toml").write_text(
        'name = "hvac"\nversion = "1.0"\npublisher = "acme"\nsummary = "HVAC"\n'
        'plugs = ["network", "bluez", "network-manager"]\n'
        '[daemons.control]\nexec = "bin/control"\n')
    (source / "bin" / "control").write_text("#!/bin/sh\nexit 0\n")
    (source / "bin" / "control").chmod(0o755)
    hvac = appimage.build(source, world.tmp / "images").path
    _publish(world, "2.0.1")
    with world.admin() as client:
        publish_app(client, world.ws.key("apps-acme"), hvac, NOW)
        client.call("POST", "/v1/tenants", {"name": "hotel"})
        client.call("POST", "/v1/gateways/gw-1/assign", {"tenant": "hotel"})
        client.call("POST", "/v1/groups", {"name": "lobby", "tenant": "hotel"})
        client.call("POST", "/v1/groups/lobby/gateways", {"serial": "gw-1", "tenant": "hotel"})
        client.call("PUT", "/v1/groups/lobby/apps/minibar",
                    {"publisher": "acme", "version": "2.0.1", "tenant": "hotel"})
        client.call("PUT", "/v1/groups/lobby/apps/hvac", {
            "publisher": "acme", "version": "1.0", "grants": ["network", "bluez"],
            "tenant": "hotel"})
        with pytest.raises(InputError, match="unknown interface 'wifi'"):
            client.call("PUT", "/v1/groups/lobby/apps/hvac", {
                "publisher": "acme", "version": "1.0", "grants": ["wifi"], "tenant": "hotel"})
    outcomes = {o.app: o for o in gw.agent.check_apps()}
    assert {a: o.action for a, o in outcomes.items()} == {"hvac": "installed",
                                                          "minibar": "installed"}
    assert outcomes["hvac"].detail == "not granted: network-manager"  # said, not given
    assert reconcile.granted(board, "hvac") == {"network", "bluez"}
    assert reconcile.granted(board, "minibar") == set()
    assert {o.action for o in gw.agent.check_apps()} == {"kept"}
    _publish(world, "2.0.2")
    with world.admin() as client:
        client.call("PUT", "/v1/groups/lobby/apps/minibar",
                    {"publisher": "acme", "version": "2.0.2", "tenant": "hotel"})
        client.call("DELETE", "/v1/groups/lobby/apps/hvac?tenant=hotel")
    outcomes = {o.app: o.action for o in gw.agent.check_apps()}
    assert outcomes == {"minibar": "installed", "hvac": "removed"}
    assert store.installed(board) == ["minibar"]
    assert store.current(board, "minibar").version == "2.0.2"


def test_an_installed_app_runs_in_its_sandbox_from_the_cli(world: World) -> None:
    _needs_root()
    with world.admin() as client:
        publish.add_tenant(client, world.ws, "acme", None, NOW)
    # an app's own user must reach the data area: not under pytest's 0700 temp dirs
    where = scratch_dir("edgeward-gw-")
    where.chmod(0o755)
    agent = world.gateway("gw-9", where)
    try:
        source = world.tmp / "minibar-cli"
        (source / "bin").mkdir(parents=True)
        (source / "app.toml").write_text(
            'name = "minibar"\nversion = "3.0"\npublisher = "acme"\nsummary = "Minibar"\n'
            '[commands.status]\nexec = "bin/status"\n')
        (source / "bin" / "status").write_text(
            "#!/bin/sh\necho minibar 3.0 as $(id -u); echo stock > \"$EDGEWARD_DATA/stock\"; "
            "cat /etc/hostname 2>/dev/null || echo no-etc\n")
        (source / "bin" / "status").chmod(0o755)
        image = appimage.build(source, world.tmp / "images").path
        with world.admin() as client:
            publish_app(client, world.ws.key("apps-acme"), image, NOW)
        tuf = agent.updater().tuf("a")
        try:
            store.install(agent.board, tuf, "acme", "minibar", "3.0")
        finally:
            tuf.close()
        device = where / "gw-9"
        ran = edgeward("device", "apps", "run", "--device", device, "minibar", "status")
        uid = users.user_for(agent.board, "minibar").uid
        assert ran.stdout.split("\n")[0] == f"minibar 3.0 as {uid}"
        assert "no-etc" in ran.stdout  # the host's /etc is not readable beyond its rules
        data = store.current(agent.board, "minibar").data
        assert (data / "stock").stat().st_uid == uid  # its one writable directory
        listed = json.loads(edgeward("device", "apps", "list", "--device", device,
                                     "--json").stdout)
        assert listed == [{"app": "minibar", "version": "3.0", "publisher": "acme",
                           "mounted": True, "granted": [], "withheld": [], "mode": "enforce",
                           "programs": ["status"], "daemons": {}}]
        missing = edgeward("device", "apps", "run", "--device", device, "minibar", "nope",
                           ok=False)
        assert missing.returncode == 3 and "has no command or daemon 'nope'" in missing.stderr
        edgeward("device", "apps", "remove", "--device", device, "minibar")
        assert store.installed(agent.board) == []
    finally:
        for name in store.installed(agent.board):
            store.remove(agent.board, name)
        remove_scratch(where)
