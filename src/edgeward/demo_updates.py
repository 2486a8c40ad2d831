"""The demo's second half: signed updates rolling out over the fleet on their own.

Gateways are grouped (a canary and the lobby, whose maintenance window is open
now) and each agent checks for updates in rounds, as its timer would:

1. a security patch (1.0.1, security version 2, shipped as a delta) is
   published and rolled out canary first; the rollout advances on its own
   when the canary commits, and every gateway burns the new counter;
2. a bad release (1.0.2, a kernel command line that cannot mount its root)
   goes to the canary, which falls back after the boot limit and says why;
   the rollout halts on the failure rate and the lobby never sees it;
3. an old vulnerable release (0.9.0, security version 1) is published: the
   server does not offer it to gateways past it, and a gateway asked to install
   it anyway refuses the downgrade against its fused counter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeward.api_client import ApiClient
from edgeward.board.virtual import VirtualBoard
from edgeward.device.agent import Agent, AgentSettings, remember_server_ca
from edgeward.factory.station import Factory
from edgeward.files import load_private_key, read_file
from edgeward.release import osbuild, publish
from edgeward.release.workspace import Workspace

TENANT = "demo-hotels"
ROUNDS = 4


@dataclass
class Chapter:
    version: str
    outcomes: dict[str, str] = field(default_factory=dict)  # serial -> action: detail
    rollout: dict[str, Any] = field(default_factory=dict)

    def actions(self) -> dict[str, str]:
        return {s: o.split(":")[0] for s, o in self.outcomes.items()}


@dataclass
class UpdateStory:
    patch: Chapter
    bad: Chapter
    downgrade: Chapter
    versions: dict[str, str] = field(default_factory=dict)  # serial -> running version

    @property
    def ok(self) -> bool:
        canary, *rest = sorted(self.patch.outcomes)
        return (set(self.patch.actions().values()) == {"committed"}
                and self.patch.rollout.get("state") == "finished"
                and self.bad.actions() == {canary: "rolled-back"}
                and self.bad.rollout.get("state") == "halted"
                and set(self.downgrade.actions().values()) == {"refused"}
                and set(self.versions.values()) == {self.patch.version} and bool(rest))

    def to_dict(self) -> dict[str, Any]:
        return {name: {"version": c.version, "outcomes": c.outcomes, "rollout": c.rollout}
                for name, c in (("patch", self.patch), ("bad", self.bad),
                                ("downgrade", self.downgrade))} | {"versions": self.versions}


def run(directory: Path, url: str, server_ca: Path, admin: ApiClient, ops: ApiClient,
        factory: Factory, ws: Workspace, devices: list[Path], say: Callable[[str], None]
        ) -> UpdateStory:
    """``admin`` is the platform (publisher, rollouts); ``ops`` the tenant's operator."""
    agents = {}
    for device in devices:
        board = VirtualBoard.open(device)
        remember_server_ca(board, server_ca)
        agents[device.name] = Agent(board, AgentSettings(url, once=True, update_every=0))
    canary, *lobby = sorted(agents)
    now = dt.datetime.now(dt.UTC)
    window = f"{(now - dt.timedelta(hours=1)):%H:00}-{(now + dt.timedelta(hours=2)):%H:00}"
    admin.call("POST", "/v1/groups", {"name": "canary", "tenant": TENANT})
    admin.call("POST", "/v1/groups", {"name": "lobby", "tenant": TENANT, "window": window})
    for serial in agents:
        group = "canary" if serial == canary else "lobby"
        admin.call("POST", f"/v1/groups/{group}/gateways", {"serial": serial, "tenant": TENANT})
    say(f"groups: canary ({canary}), lobby ({', '.join(lobby)}; maintenance window "
        f"{window} UTC)")
    kernel_key = load_private_key(factory.root / "offline" / "kernel.key", None, "kernel key")
    root = read_file(ws.root_json, "TUF root")
    builds = directory / "builds"

    def release(version: str, svn: int, chapter: str, **kw: Any) -> int:
        """Build, publish to stable with a canary-first rollout; the rollout's id."""
        built = osbuild.build(builds / version, version, svn, factory.model, kernel_key, root,
                              **kw)
        published = publish.publish_os(admin, ws, built, "stable", dt.datetime.now(dt.UTC),
                                       stages=[f"{TENANT}/canary", "100%"])
        sizes = ", ".join(f"{p.rsplit('/', 1)[1]} {n} B" for p, n in published.targets.items())
        say(f"{chapter}: published {version} (security version {svn}) to stable: {sizes}")
        found = admin.call("GET", "/v1/rollouts")
        made = next(r for r in found if r["version"] == version)
        say(f"rollout {made['id']} of {version}: canary first, then everyone")
        return int(made["id"])

    def rounds(chapter: Chapter, rollout_id: int | None) -> None:
        """Each agent's timer fires once per round, until nothing moves any more."""
        for n in range(1, ROUNDS + 1):
            moved = False
            for serial, agent in agents.items():
                if serial in chapter.outcomes:
                    continue
                outcome = agent.check_updates()
                if outcome.action not in ("none", "waiting"):
                    moved = True
                    chapter.outcomes[serial] = f"{outcome.action}: {outcome.detail}"
                    say(f"  round {n}: {serial} {outcome.action}: {outcome.detail}")
            if rollout_id is not None:
                chapter.rollout = admin.call("GET", f"/v1/rollouts/{rollout_id}")
                say(f"  round {n}: rollout {rollout_id} {chapter.rollout['state']}, stage "
                    f"{chapter.rollout['current_stage'] + 1}/{len(chapter.rollout['stages'])}"
                    + (f" ({chapter.rollout['halted_reason']})"
                       if chapter.rollout.get("halted_reason") else ""))
            if not moved or len(chapter.outcomes) == len(agents):
                break

    patch = Chapter("1.0.1")
    rounds(patch, release("1.0.1", 2, "security patch", base=factory.release.directory,
                          files={"usr/lib/edgeward/openssl-fix": b"CVE-2026-0001 fixed\n"}))
    bad = Chapter("1.0.2")
    rounds(bad, release("1.0.2", 2, "bad release", base=builds / "1.0.1",
                        cmdline="root=/dev/mmcblk0p9 ro quiet"))
    downgrade = Chapter("0.9.0")
    release("0.9.0", 1, "old release")
    rounds(downgrade, None)
    offered = ops.call("GET", f"/v1/gateways/{lobby[0]}/update")["desired"]
    say(f"  the server offers {lobby[0]} {(offered['os'] or {}).get('version')} "
        f"({offered['reason']}), not 0.9.0: it is below the fleet's security version")
    for serial, agent in agents.items():  # asked anyway, as a server gone bad would
        outcome = agent.updater().install_version("0.9.0")
        downgrade.outcomes[serial] = f"{outcome.action}: {outcome.detail}"
        say(f"  {serial} asked to install 0.9.0 anyway: {outcome.action}: {outcome.detail}")
    story = UpdateStory(patch, bad, downgrade)
    for serial, agent in agents.items():
        story.versions[serial] = str(dict(agent.boot.get("versions", {})).get("rootfs", "?"))
    return story
