"""End to end on a real server and virtual gateways: a published release reaches a
gateway through TUF and commits, or rolls back on its own and says why."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from tuf.api.metadata import TargetFile

from edgeward.board.base import policy_partition
from edgeward.device.agent import Agent, AgentSettings
from edgeward.device.boot.chain import boot, last_boot
from edgeward.device.storage import sealed, volume
from edgeward.device.storage.tpm import Tpm
from edgeward.release import publish, roles
from edgeward.server.runner import Running
from edgeward.trust.publication import HASH
from tests.conftest import require_tool
from tests.updates.conftest import World


def _server_view(world: World, serial: str) -> dict[str, Any]:
    with world.admin() as client:
        found: dict[str, Any] = client.call("GET", f"/v1/gateways/{serial}/update?limit=200")
        return found


def _details(world: World, serial: str) -> list[str]:
    return [f"{e['phase']}: {e['detail']}" for e in _server_view(world, serial)["events"]]


def _on(world: World, serial: str) -> tuple[str, str]:
    booted = last_boot(world.boards[serial])
    assert booted is not None and booted["verdict"] == "booted"
    return str(booted["slot"]), str(booted["versions"]["rootfs"])


def test_security_release_installs_by_delta_commits_and_burns_the_counter(
        world: World) -> None:
    agent = world.gateway("gw-1")
    board = world.boards["gw-1"]
    build = world.build("1.1.0", 2, base=world.factory.release.directory)
    world.publish(build, "stable")

    outcome = agent.check_updates()

    assert outcome.action == "committed", outcome
    env = board.read_env()
    assert env is not None and env.active == "b" and not env.try_boot
    assert board.fuses().os_security_version == 2
    assert board.fuses().security_version == 1  # BL2's own counter: BL2 was not updated
    assert _on(world, "gw-1") == ("b", "1.1.0")
    view = _server_view(world, "gw-1")
    assert view["current"]["phase"] == "committed" and view["current"]["version"] == "1.1.0"
    assert any("delta from 1.0.0" in d for d in _details(world, "gw-1"))
    assert agent.check_updates().action == "none"  # up to date: nothing more to do


def test_a_gateway_with_a_tpm_takes_a_security_release_without_a_reseal(world: World
                                                                        ) -> None:
    """The approved TPM policy travels in the kernel's signed TUF target and is written
    with the slot; the trial boot opens /data with it, the commit moves the TPM's counter,
    and the old release's approval no longer opens anything."""
    require_tool("swtpm")
    agent = world.gateway("gw-tpm", tpm=True)
    board = world.boards["gw-tpm"]
    blob = (board.sealed_dir / sealed.BLOB).read_bytes()
    old_policy = board.read(policy_partition("a"))
    world.publish(world.build("1.1.0", 2, base=world.factory.release.directory))

    outcome = agent.check_updates()

    assert outcome.action == "committed", outcome
    assert _on(world, "gw-tpm") == ("b", "1.1.0") and volume.unlocked(board)
    assert (board.sealed_dir / sealed.BLOB).read_bytes() == blob  # never resealed
    tcti = board.tpm()
    assert tcti is not None
    with Tpm(tcti) as chip:
        assert chip.read_counter() == 2
    board.write(policy_partition("b"), old_policy or b"")  # 1.0.0's approval, replayed
    report = boot(board)
    assert report.refused_stage == "os" and not volume.unlocked(board)


def test_full_image_when_the_slot_is_not_the_delta_base(world: World) -> None:
    agent = world.gateway("gw-1")
    world.publish(world.build("1.1.0", 2, base=world.factory.release.directory))
    assert agent.check_updates().action == "committed"
    # 1.2.0's delta is from 1.0.0, but this gateway now runs 1.1.0: the full image it is
    world.publish(world.build("1.2.0", 2, base=world.factory.release.directory))
    outcome = agent.check_updates()
    assert outcome.action == "committed", outcome
    assert _on(world, "gw-1") == ("a", "1.2.0")
    assert any("slot a written (full image)" in d for d in _details(world, "gw-1"))


def test_release_that_does_not_boot_falls_back_and_is_reported(world: World) -> None:
    """A signed release with a broken kernel command line: the kernel cannot mount
    its root, the watchdog resets, BL2 gives up after the boot limit and falls back."""
    agent = world.gateway("gw-1")
    board = world.boards["gw-1"]
    world.publish(world.build("1.1.0", 2, cmdline="root=/dev/mmcblk0p9 ro"))

    outcome = agent.check_updates()

    assert outcome.action == "rolled-back", outcome
    assert "was not committed after 3 boot(s); fell back to slot a" in outcome.detail
    assert _on(world, "gw-1") == ("a", "1.0.0")
    assert board.fuses().os_security_version == 1  # nothing burnt for a failed release
    view = _server_view(world, "gw-1")
    assert view["current"]["phase"] == "rolled-back"
    assert "fell back" in view["current"]["detail"]
    skipped = agent.check_updates()  # not tried again and again
    assert skipped.action == "none" and "failed here before" in skipped.detail


class _LosesServerOnReboot(Agent):
    """The power cycle is the seam: the fleet server goes away while the gateway reboots."""

    server: Running | None = None

    def reboot(self) -> None:
        super().reboot()
        if self.server is not None:
            self.server.__exit__(None, None, None)
            self.server = None


def test_failed_health_check_rolls_back_at_once_and_reports_later(world: World) -> None:
    world.gateway("gw-1")
    board = world.boards["gw-1"]
    world.publish(world.build("1.1.0", 2, base=world.factory.release.directory))
    agent = _LosesServerOnReboot(board, AgentSettings(world.server.url, once=True,
                                                      update_every=0, backoff_base=0.01))
    agent.server = world.server

    outcome = agent.check_updates()

    assert outcome.action == "rolled-back", outcome
    assert outcome.detail.startswith("health check failed: fleet server not reached")
    assert _on(world, "gw-1") == ("a", "1.0.0")
    env = board.read_env()
    assert env is not None and env.active == "a" and not env.try_boot
    assert board.fuses().os_security_version == 1
    # the server comes back: the reports the gateway kept reach it at the next contact
    with Running(world.server.settings, dt.datetime.now(dt.UTC)) as server:
        world.server = server
        assert Agent(board, AgentSettings(server.url, once=True, update_every=0)
                     ).updater().after_boot().action == "none"
        view = _server_view(world, "gw-1")
        assert view["current"]["phase"] == "rolled-back"
        assert "health check failed" in view["current"]["detail"]


def test_maintenance_window_and_channels(world: World) -> None:
    agent = world.gateway("gw-1")
    with world.admin() as client:
        client.call("POST", "/v1/tenants", {"name": "acme"})
        client.call("POST", "/v1/gateways/gw-1/assign", {"tenant": "acme"})
        now = dt.datetime.now(dt.UTC)
        closed = f"{(now + dt.timedelta(hours=2)):%H:00}-{(now + dt.timedelta(hours=3)):%H:00}"
        client.call("POST", "/v1/groups", {"name": "lobby", "tenant": "acme",
                                           "channel": "stable", "window": closed})
        client.call("POST", "/v1/groups/lobby/gateways", {"serial": "gw-1", "tenant": "acme"})
    world.publish(world.build("1.1.0", 2), "beta")
    assert agent.check_updates().action == "none"  # beta is not this group's channel
    with world.admin() as client:
        client.call("PATCH", "/v1/groups/lobby", {"tenant": "acme", "channel": "beta"})
    waiting = agent.check_updates()
    assert waiting.action == "waiting" and "maintenance window" in waiting.detail
    assert _on(world, "gw-1") == ("a", "1.0.0")
    with world.admin() as client:
        client.call("PATCH", "/v1/groups/lobby", {"tenant": "acme", "window": ""})
    assert agent.check_updates().action == "committed"
    assert _on(world, "gw-1") == ("b", "1.1.0")


def test_promotion_moves_a_release_to_stable(world: World) -> None:
    agent = world.gateway("gw-1")
    world.publish(world.build("1.1.0", 2), "candidate")
    assert agent.check_updates().action == "none"  # default policy follows stable
    with world.admin() as client:
        publish.promote(client, world.ws, "ew-gw1", "1.1.0", "stable",
                        dt.datetime.now(dt.UTC))
    assert agent.check_updates().action == "committed"


def test_os_patching_neither_waits_on_nor_touches_app_releases(world: World) -> None:
    """A tenant's app release in the repository changes nothing of the OS stream."""
    agent = world.gateway("gw-1")
    now = dt.datetime.now(dt.UTC)
    app = world.tmp / "minibar.squashfs"
    app.write_bytes(b"minibar app 2.0 " * 1000)
    with world.admin() as client:
        publish.add_tenant(client, world.ws, "acme", None, now)
        target = publish.upload_file(client, app)
        target.path = "apps/acme/minibar/2.0/minibar.squashfs"
        role = publish.fetch(client, "apps-acme")
        md = roles.add_targets(role, {target.path: (target, None)},
                               world.ws.key("apps-acme"), now)
        publish.upload_role(client, "apps-acme", md)
    assert isinstance(target, TargetFile)
    assert target.hashes[HASH] == hashlib.sha384(app.read_bytes()).hexdigest()
    world.publish(world.build("1.1.0", 2))
    assert agent.check_updates().action == "committed"
    downloaded = list((world.boards["gw-1"].data_dir / "edgeward").rglob("*minibar*"))
    assert downloaded == []  # the OS update fetched no app, and no app gated it
