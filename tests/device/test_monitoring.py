"""The agent's monitoring against a real fleet server (mutual TLS): reports with the
gateway's and its apps' metrics stored and charted; a listening port opened after the
start pushed at once as an event; reports kept on disk while the server is away and
delivered after a restart, each batch once; a bounded spool that says what it dropped;
an executable started from a writable filesystem."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeward.api_client import ApiClient
from edgeward.device.agent import Agent
from edgeward.device.telemetry import sockets
from edgeward.device.telemetry.monitor import Monitoring, MonitorSettings
from edgeward.device.telemetry.spool import ReportSpool
from edgeward.errors import Unreachable
from edgeward.server.services.logquota import LogQuota
from tests.updates.conftest import world, world_template  # noqa: F401 (fixtures)
from tests.updates.world import World

SERIAL = "gw-mon"

ANY = "0.0.0.0"  # noqa: S104 (an address in a report, not a bind)


@pytest.fixture
def agent(world: World) -> Iterator[Agent]:  # noqa: F811
    made = world.gateway(SERIAL)
    yield made
    made.board.power_off()


def monitoring(agent: Agent, client: object = None) -> Monitoring:
    return Monitoring(agent.board, client or agent._client,  # type: ignore[arg-type]
                      str(agent.boot["boot_id"]),
                      MonitorSettings(interval=30.0, audit_every=0))


def points(world: World, metric: str = "cpu_percent") -> list[dict[str, object]]:  # noqa: F811
    with world.admin() as admin:
        return list(admin.call("GET", f"/v1/gateways/{SERIAL}/metrics?metric={metric}"
                                      "&since=" + str(time.time() - 3600))["points"])


def test_reports_and_a_new_listener_reach_the_server(world: World, agent: Agent  # noqa: F811
                                                     ) -> None:
    watch = monitoring(agent)
    watch.start()  # the first scan learns what the gateway came with
    try:
        time.sleep(0.2)
        report = watch.sample()
        assert 0 <= report["metrics"]["cpu_percent"] <= 100
        assert report["metrics"]["net_tx_rate"] >= 0 and "memory_percent" in report["metrics"]
        assert report["boot_id"] == agent.boot["boot_id"]
        with socket.create_server((ANY, 0)) as backdoor:
            port = backdoor.getsockname()[1]
            watch._scan()
            watch._deliver()
        with world.admin() as admin:
            events = admin.call("GET", f"/v1/events?gateway={SERIAL}&kind=listen")
        assert any(f"tcp/{port}" in e["what"] for e in events)
        assert sum(int(p["count"]) for p in points(world)) == 1  # type: ignore[call-overload]
        watch._scan()
        watch._deliver()  # the same port again is not news
        with world.admin() as admin:
            again = admin.call("GET", f"/v1/events?gateway={SERIAL}&kind=listen")
        assert len(again) == len(events)
    finally:
        watch.close()


def test_reports_wait_on_disk_while_the_server_is_away(world: World, agent: Agent  # noqa: F811
                                                       ) -> None:
    def away() -> ApiClient:
        return ApiClient("https://127.0.0.1:9", agent._context())

    offline = monitoring(agent, away)
    offline.start()
    for _ in range(4):
        offline.sample()
    with pytest.raises(Unreachable):
        offline._deliver()
    offline.close()  # the agent stops; the reports stay on the encrypted data area
    assert (agent.board.data_dir / "edgeward" / "telemetry.spool").stat().st_mode & 0o777 \
        == 0o600
    back = monitoring(agent)
    assert len(back.spool) == 4
    batch, reports = back.spool.take()
    with agent._client() as client:  # its answer lost: the same batch comes again
        client.call("POST", "/v1/gateway/telemetry", {"batch": batch, "reports": reports})
    back._deliver()
    assert len(back.spool) == 0
    assert sum(int(p["count"]) for p in points(world)) == 4  # type: ignore[call-overload]


def test_a_full_spool_drops_the_oldest_and_says_so(tmp_path: Path) -> None:
    spool = ReportSpool(tmp_path / "spool", cap=3)
    for n in range(5):
        spool.add({"n": n})
    batch, taken = spool.take(limit=2)
    assert [r["n"] for r in taken] == [2, 3] and spool.told_dropped() == 2
    spool.add({"n": 5})  # the oldest not on its way goes: 4
    assert spool.take(limit=2) == (batch, taken) and spool.told_dropped() == 1
    spool.save()
    again = ReportSpool(tmp_path / "spool", cap=3)
    assert again.take(limit=2) == (batch, taken)  # after a restart: the same id
    again.sent()
    assert [r["n"] for r in again.take()[1]] == [5] and spool.told_dropped() == 0


def test_an_executable_from_a_writable_filesystem_is_named(tmp_path: Path) -> None:
    """A writable filesystem of the gateway's (a tmpfs: the data area is another), not
    the host's root, which stands in for the gateway's read-only system."""
    drop = tmp_path / "drop"
    drop.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "edgeward-test", str(drop)],
                   check=True)
    try:
        dropped = drop / "kworkerd"
        shutil.copy("/bin/sleep", dropped)
        process = subprocess.Popen([str(dropped), "30"])
        host = subprocess.Popen(["/bin/sleep", "30"])  # the host's own: not judged
        try:
            apps = {process.pid: "weather", host.pid: "weather"}
            found = sockets.writable_execs(apps, scope=set())
            assert found == [(process.pid, str(dropped), "weather")]
        finally:
            for p in (process, host):
                p.kill()
                p.wait()
    finally:
        subprocess.run(["umount", str(drop)], check=True)


def test_the_hardening_audit_reaches_the_server(world: World, agent: Agent  # noqa: F811
                                                ) -> None:
    watch = monitoring(agent)
    found = watch.audit()  # the booted slot's rootfs, read-only, and the host's listeners
    assert watch.pending_audit is not None and watch.pending_audit["findings"] == found
    watch._deliver()
    assert watch.pending_audit is None
    with world.admin() as admin:
        stored = admin.call("GET", f"/v1/findings?gateway={SERIAL}&source=gateway")
    assert sorted(f["check"] for f in stored["findings"]) == sorted(f["check"] for f in found)
    assert found and not any(f["check"].startswith(("console.", "accounts.", "fuse."))
                             for f in found)  # the shipped image: no getty, no password


def test_failed_logins_are_pushed_per_source_as_they_are_written(
        world: World, agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    log = tmp_path / "auth.log"
    log.write_text("Nov 29 09:00:01 gw sshd[1]: Failed password for root from 192.0.2.1 "
                   "port 1 ssh2\n")  # before the agent: history
    watch = Monitoring(agent.board, agent._client, str(agent.boot["boot_id"]),
                       MonitorSettings(audit_every=0, auth_log=log))
    watch.start()
    try:
        with log.open("a") as f:
            for n in range(25):
                f.write(f"Nov 29 09:01:{n:02d} gw sshd[2]: Failed password for invalid user "
                        f"admin from 198.51.100.9 port {n} ssh2\n")
            f.write("Nov 29 09:02:00 gw login[3]: FAILED LOGIN (1) on '/dev/ttyS0' FOR "
                    "'root', Authentication failure\n")
            f.write("Nov 29 09:02:01 gw sshd[4]: Failed password for root from 203.0")
        watch._logins()
        watch._deliver()
        with world.admin() as admin:
            events = admin.call("GET", f"/v1/events?gateway={SERIAL}&kind=login")
            raised = admin.call("GET", "/v1/alerts")
        assert sorted((e["what"], e["count"]) for e in events) == [
            ("failed login for admin from 198.51.100.9", 25),
            ("failed login for root from /dev/ttyS0", 1)]
        assert any(a["kind"] == "login.bruteforce" and a["gateway"] == SERIAL
                   for a in raised)
    finally:
        watch.close()


def test_log_lines_over_the_quota_wait_and_the_rest_goes_on(world: World, agent: Agent  # noqa: F811
                                                            ) -> None:
    """A log batch the server refuses for this gateway's quota (429) waits as long as it
    asks (bounded), under the same id; reports and events are delivered meanwhile."""
    world.server.state.log_quota = LogQuota(burst=2, rate=0.001)
    watch = monitoring(agent)
    watch.agent_line("before the flood")
    watch._deliver()  # one of the two lines' worth taken
    for n in range(3):
        watch.agent_line(f"flood {n}")
    held = watch.logs.take()
    watch.sample()
    watch._deliver()  # refused: the server asks for 1,000 s, the agent waits 300 at most
    assert 290 < watch.logs_held_until - time.monotonic() <= 300
    assert len(watch.spool) == 0  # the report went all the same
    assert len(points(world, "memory_percent")) == 1
    watch._deliver()  # still waiting: not even sent
    world.server.state.log_quota = LogQuota()
    watch._deliver()
    assert watch.logs.take() is held  # no sooner than asked
    watch.logs_held_until = 0.0  # the 300 s are over
    watch._deliver()
    assert watch.logs.take().lines == []
    with world.admin() as admin:
        lines = admin.call("GET", f"/v1/logs?gateway={SERIAL}&q=flood")["lines"]
    assert sorted(x["text"] for x in lines) == [
        "before the flood", "flood 0", "flood 1", "flood 2"]
