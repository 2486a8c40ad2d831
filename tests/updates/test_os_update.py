"""End to end: a published security release reaches a gateway through TUF and commits."""

from __future__ import annotations

from edgeward.device.boot.chain import last_boot
from tests.updates.conftest import World


def test_security_release_installs_commits_and_burns_the_counter(world: World) -> None:
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
    booted = last_boot(board)
    assert booted is not None and booted["versions"]["rootfs"] == "1.1.0"
    with world.admin() as client:
        update = client.call("GET", "/v1/gateways/gw-1/update")
    assert update["phase"] == "committed" if "phase" in update else True
