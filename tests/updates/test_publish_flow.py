"""Publishing and finishing updates when something went wrong half way."""

from __future__ import annotations

import datetime as dt
import ssl

import httpx
import pytest
from tuf.api.metadata import TargetFile

from edgeward.api_client import ApiClient
from edgeward.device.updates import state
from edgeward.errors import NotFound
from edgeward.release import publish, roles
from edgeward.release.osbuild import Build
from edgeward.trust.targets import OS_ROLE, OsTarget, kernel_path, rootfs_path
from tests.updates.conftest import World


def test_a_release_never_goes_out_without_a_rollout(world: World) -> None:
    build = world.build("1.1.0", 2)
    with world.admin() as client, pytest.raises(NotFound, match="no group acme/nowhere"):
        publish.publish_os(client, world.ws, build, "stable", dt.datetime.now(dt.UTC),
                           stages=["acme/nowhere", "100%"])
    repo = world.server.state.repository
    assert repo is not None and repo.current(OS_ROLE).signed.version == 1  # nothing out
    world.publish(build)  # 1.1.0 published properly: its rollout is made with it
    with world.admin() as client:
        # as if a publication reached the repository and its database transaction was lost
        md = roles.add_targets(publish.fetch(client, OS_ROLE),
                               _files(client, world.build("1.2.0", 2)),
                               world.ws.key(OS_ROLE), dt.datetime.now(dt.UTC))
        repo.publish(OS_ROLE, md.to_bytes())  # the repository only, no database row
        world.publish(world.build("1.3.0", 2))
        versions = sorted(r["version"] for r in client.call("GET", "/v1/rollouts"))
    assert versions == ["1.1.0", "1.2.0", "1.3.0"]  # the lost one got its rollout too


def _files(client: ApiClient, build: Build) -> dict[str, tuple[TargetFile, OsTarget | None]]:
    """Upload a build's images; their targets as publish_os would sign them."""
    version = str(build.info()["version"])
    out: dict[str, tuple[TargetFile, OsTarget | None]] = {}
    for kind, path, file in (("kernel", kernel_path("ew-gw1", version), build.kernel),
                             ("rootfs", rootfs_path("ew-gw1", version), build.rootfs)):
        target = publish.upload_file(client, file)
        target.path = path
        out[path] = (target, OsTarget(kind, "ew-gw1", version, "stable", 2))
    return out


def test_a_staged_slot_that_no_longer_verifies_is_rolled_back_not_stuck(world: World
                                                                       ) -> None:
    agent = world.gateway("gw-1")
    board = world.boards["gw-1"]
    st = state.load(board)
    st.phase, st.version, st.slot = "staged", "1.1.0", "b"  # slot b was never written
    state.save(board, st)
    outcome = agent.updater().after_boot()
    assert outcome.action == "rolled-back" and "no longer verifies" in outcome.detail
    assert state.load(board).phase == "idle"
    agent.finish_boot()  # and the agent's start goes on


def test_metadata_bodies_up_to_4_mib_reach_the_repository(world: World) -> None:
    token = (world.server.settings.data / "admin-token").read_text()
    with httpx.Client(base_url=world.server.url, headers={"authorization": f"Bearer {token}"},
                      verify=ssl.create_default_context(cafile=str(world.ca))) as http:
        big = http.put("/v1/repository/metadata/os", content=b"{" + b" " * (300 << 10))
        assert big.status_code == 400 and "malformed" in big.json()["error"]
        huge = http.put("/v1/repository/metadata/os", content=b" " * (5 << 20))
        assert huge.status_code == 413
