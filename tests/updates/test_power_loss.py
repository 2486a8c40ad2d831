"""Power-loss safety of OS updates (issue 5, item 8).

The update runs in a process of its own (``tests/updates/update_child.py``: the
real ``edgeward device update --now``) and is killed with SIGKILL at chosen
points: while the rootfs downloads, while a slot is written to flash, between
the write and the switch, during the first boot of the new slot, between its
commit and the fused counter; then at random moments across the whole update.
Each kill is triggered by what the test sees on the board (a ``.part`` file
growing, the flash temporary of an atomic write, ``update.json``'s phase, the
boot environment's copies, the boot state in RAM, the fuse bank), not by a
timer; the child only widens those windows (it sleeps, then calls the original).

Then the power comes back: the boot chain runs (it verifies the kernel bundle
and the rootfs of the slot it boots), possibly several times, and must boot;
then a fresh agent finishes what the update left, and the gateway must end
committed on the new release with its OS counter burnt, or rolled back with a
reason: never a board that does not boot, never a half-written slot on trial.
The fleet server must have been told the outcome.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgeward.board.base import kernel_partition, rootfs_partition
from edgeward.board.bootenv import DEFAULT_BOOT_LIMIT, other
from edgeward.board.virtual import VirtualBoard
from edgeward.device.agent import Agent, AgentSettings
from edgeward.device.boot.chain import BOOT_STATE, boot, last_boot
from edgeward.device.storage import volume
from edgeward.device.updates import fetcher, installer, state
from edgeward.device.updates.updater import Outcome
from edgeward.factory import station
from edgeward.release import osbuild, workspace
from edgeward.server.runner import Running, Settings
from tests.server.harness import free_port
from tests.updates.conftest import World

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("update_child.py")
REPO = Path(__file__).resolve().parents[2]
OLD, NEW, NEW_SVN = "1.0.0", "1.1.0", 2
TREE_MB = 40  # incompressible: the rootfs is as big, so every window is wide
HOLD = 60.0  # "pause before": long enough that only the kill ends it
TARGETS_ROUTE = "/v1/gateway/tuf/targets/{path:path}"
SWEEP = dict(download_delay=0.02, write_delay=0.02, boot_delay=0.01)  # throttles of the sweep


class ServerLog(logging.Handler):
    """The fleet server's request log (it runs in this process): route and status."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and "route" in fields:
            self.requests.append(dict(fields))

    def ranged_target_downloads(self) -> int:
        return sum(1 for r in self.requests
                   if r["route"] == TARGETS_ROUTE and r["status"] == 206)


@dataclass
class Lab:
    world: World
    build: osbuild.Build
    log: ServerLog
    sweep: tuple[float, float] = (1.0, 6.0)  # from the update's first step to its end, s

    @property
    def length(self) -> int:
        return self.build.rootfs.stat().st_size

    def child(self, board: VirtualBoard, name: str, **delays: float) -> Child:
        return Child(self.world.server.url, board, name, **delays)


@pytest.fixture(scope="module")
def lab(world_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One fleet server for the module with release 1.1.0 (a rootfs of ~40 MB of
    random files) on the stable channel; each test provisions its own gateway."""
    tmp = tmp_path_factory.mktemp("power-loss")
    for name in ("server", "ws", "factory"):
        shutil.copytree(world_template / name, tmp / name)
    fac = station.open_factory(tmp / "factory")
    settings = Settings(tmp / "server", None, "127.0.0.1", free_port(),
                        (fac.root / "ca.pem",), (fac.release.known_good,))
    log = ServerLog()
    server_logger = logging.getLogger("edgeward.server")
    level = server_logger.level
    server_logger.addHandler(log)
    server_logger.setLevel(logging.INFO)
    try:
        with Running(settings, dt.datetime.now(dt.UTC)) as server:
            world = World(tmp, server, workspace.open_workspace(tmp / "ws", None), fac)
            tree = tmp / "tree" / "opt" / "payload"
            tree.mkdir(parents=True)
            for i in range(TREE_MB // 4):
                (tree / f"blob-{i}.bin").write_bytes(os.urandom(4 << 20))
            build = world.build(NEW, NEW_SVN, tree=tmp / "tree")
            assert build.delta() is None  # a full image: the download is the whole rootfs
            world.publish(build, "stable")
            yield Lab(world, build, log)
    finally:
        server_logger.removeHandler(log)
        server_logger.setLevel(level)


# --- the child, and killing it ------------------------------------------------------
RUNNING: list[Child] = []


@pytest.fixture(autouse=True)
def no_child_left() -> Iterator[None]:
    """A test that fails mid-way leaves no update process behind (holding for a minute)."""
    yield
    while RUNNING:
        RUNNING.pop().kill()


class Child:
    """``update_child.py`` running against one gateway, its output kept in files."""

    def __init__(self, server: str, board: VirtualBoard, name: str, **delays: float) -> None:
        self.out = board.root.parent / f"{board.root.name}-{name}.out"
        self.err = board.root.parent / f"{board.root.name}-{name}.err"
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in delays.items()]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD), str(board.root), server, *flags],
                stdout=out, stderr=err, cwd=REPO)
        self.started = time.monotonic()
        RUNNING.append(self)

    def output(self) -> str:
        return (f"exit {self.proc.returncode}\nstdout: {self.out.read_text()}\n"
                f"stderr: {self.err.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def kill_when(self, seen: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        """SIGKILL the moment ``seen()`` holds; fail if the update ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seen():
                self.kill()
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the update ended before {what}:\n{self.output()}")
            time.sleep(0.002)
        self.kill()
        pytest.fail(f"{what} not seen within {timeout} s:\n{self.output()}")

    def kill_after(self, seconds: float) -> bool:
        """SIGKILL after ``seconds``; False if the update had already ended by then."""
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            return True
        return False

    def finish(self, timeout: float = 120.0) -> dict[str, str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the update did not end within {timeout} s:\n{self.output()}")
        assert self.proc.returncode == 0, self.output()
        return dict(json.loads(self.out.read_text()))


# --- what the test sees on the board ----------------------------------------------------
def work(board: VirtualBoard) -> Path:
    return board.data_dir / "edgeward" / "updates" / NEW


def part_size(board: VirtualBoard) -> int:
    if not volume.unlocked(board):  # cut mid-boot: mounted, perhaps, but sealed
        return -1
    try:
        return (work(board) / "rootfs.img.part").stat().st_size
    except FileNotFoundError:
        return -1


def flash_temporaries(board: VirtualBoard, partition: str = "*") -> list[Path]:
    return sorted((board.root / "flash").glob(f".{partition}.img.tmp-*"))


def temp_size(board: VirtualBoard, partition: str) -> int:
    for path in flash_temporaries(board, partition):
        try:
            return path.stat().st_size
        except FileNotFoundError:
            pass
    return -1


def phase(board: VirtualBoard) -> str:
    if not volume.unlocked(board):
        return "(data area locked: the power was cut in the middle of a boot)"
    return state.load(board).phase


def trial(board: VirtualBoard) -> tuple[str, int] | None:
    """(slot, boot count) while a slot is on trial, else None."""
    env = board.read_env()
    return (env.active, env.boot_count) if env is not None and env.try_boot else None


def slot_digest(board: VirtualBoard, slot: str) -> str:
    h = hashlib.sha384()
    for partition in (kernel_partition(slot), rootfs_partition(slot)):
        h.update(board.read(partition) or b"<empty>")
    return h.hexdigest()


def where_is_it(board: VirtualBoard) -> str:
    """The update's observable state, for messages."""
    env = board.read_env()
    return (f"phase={phase(board)} part={part_size(board)} temps="
            f"{[p.name for p in flash_temporaries(board)]} env={env} "
            f"ram_boot={board.ram_file(BOOT_STATE).exists()} "
            f"os_svn={board.fuses().os_security_version}")


# --- power, and what must hold after it ------------------------------------------------
def assert_nothing_half_written_on_trial(board: VirtualBoard) -> None:
    """Whatever the kill interrupted: a slot on trial is complete and verifies, and so
    does the committed slot (checked as BL2 and the kernel check them at boot)."""
    env = board.read_env()
    assert env is not None, "both boot environment copies are corrupt"
    committed = other(env.active) if env.try_boot else env.active
    installer.verify_slot(board, committed)
    if env.try_boot:
        installer.verify_slot(board, env.active)


def power_back(board: VirtualBoard, boots: int = 1) -> list[Any]:
    """Power on ``boots`` times (each a full verified boot); every one must boot."""
    reports = []
    for i in range(boots):
        report = boot(board)
        assert report.verdict == "booted", (
            f"power-on {i + 1} did not boot: {report.refused_stage}: {report.reason}")
        assert not flash_temporaries(board), "power-on left a torn flash write behind"
        booted = last_boot(board)
        assert booted is not None and booted["slot"] == report.slot
        installer.verify_slot(board, report.slot)  # and it verifies on its own too
        reports.append(report)
    return reports


def fresh_agent(lab: Lab | World, board: VirtualBoard) -> Agent:
    world = lab.world if isinstance(lab, Lab) else lab
    return Agent(board, AgentSettings(world.server.url, once=True, update_every=0,
                                      backoff_base=0.01, backoff_cap=0.05))


def finish(lab: Lab, board: VirtualBoard) -> list[Outcome]:
    """The agent's next start: finish a trial boot, then check (and install) again."""
    agent = fresh_agent(lab, board)
    done = [agent.updater().after_boot()]
    done.append(agent.check_updates(force=True))
    return [o for o in done if o.action != "none"]


def server_view(lab: Lab, serial: str) -> dict[str, Any]:
    with lab.world.admin() as client:
        return dict(client.call("GET", f"/v1/gateways/{serial}/update"))


def assert_committed(lab: Lab, board: VirtualBoard, serial: str) -> None:
    env = board.read_env()
    assert env is not None and not env.try_boot, env
    booted = last_boot(board)
    assert booted is not None and booted["slot"] == env.active
    assert booted["versions"]["rootfs"] == NEW
    assert board.fuses().os_security_version == NEW_SVN, "the OS counter was not burnt"
    st = state.load(board)
    assert st.phase == "idle" and not st.pending, st
    assert not work(board).exists(), "the downloaded images were not cleaned up"
    # a power cycle more: the committed slot boots, verified, and stays
    (report,) = power_back(board)
    assert report.slot == env.active and report.versions["rootfs"] == NEW
    current = server_view(lab, serial)["current"]
    assert current is not None and (current["version"], current["phase"]) == (NEW, "committed")


def assert_rolled_back(lab: Lab, board: VirtualBoard, serial: str, slot: str,
                       reason: str) -> None:
    env = board.read_env()
    assert env is not None and not env.try_boot and env.active == slot, env
    booted = last_boot(board)
    assert booted is not None and booted["versions"]["rootfs"] == OLD
    assert board.fuses().os_security_version == 1, "a rolled-back release burnt the counter"
    st = state.load(board)
    assert st.phase == "idle" and reason in st.failed.get(NEW, ""), st
    current = server_view(lab, serial)["current"]
    assert current is not None and (current["version"], current["phase"]) == (NEW,
                                                                               "rolled-back")
    assert reason in current["detail"]


def gateway(lab: Lab, serial: str) -> VirtualBoard:
    lab.world.gateway(serial)
    board = lab.world.boards[serial]
    env = board.read_env()
    assert env is not None and env.active == "a" and not env.try_boot
    return board


# --- the kill points --------------------------------------------------------------------
def test_power_cut_during_download_resumes_with_a_range_request(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    board = gateway(lab, "pl-download")
    before = slot_digest(board, "a")
    child = lab.child(board, "download", download_delay=0.05)
    child.kill_when(lambda: lab.length // 4 < part_size(board) < lab.length // 2,
                    "a quarter of the rootfs downloaded")
    kept = part_size(board)
    assert 0 < kept < lab.length, where_is_it(board)
    assert phase(board) == "downloading" and trial(board) is None
    assert_nothing_half_written_on_trial(board)

    (report,) = power_back(board)
    assert report.slot == "a" and report.versions["rootfs"] == OLD
    assert slot_digest(board, "a") == before
    assert part_size(board) == kept, "the partial download did not survive the power cut"

    resumed_from: list[int] = []
    real_append = fetcher._append

    def append(http: Any, url: str, part: Path, have: int, length: int, progress: Any
               ) -> None:
        if part.name == "rootfs.img.part":
            resumed_from.append(have)
        real_append(http, url, part, have, length, progress)

    monkeypatch.setattr(fetcher, "_append", append)
    ranged = lab.log.ranged_target_downloads()
    outcomes = finish(lab, board)

    assert resumed_from[:1] == [kept], f"did not resume from byte {kept}: {resumed_from}"
    assert lab.log.ranged_target_downloads() > ranged, "the server saw no Range request"
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-download")


def test_power_cut_during_the_slot_write_leaves_the_old_slot_and_no_torn_partition(
        lab: Lab) -> None:
    board = gateway(lab, "pl-write")
    before = slot_digest(board, "a")
    child = lab.child(board, "write", write_delay=0.05)
    child.kill_when(lambda: 8 << 20 < temp_size(board, "rootfs_b") < lab.length - (8 << 20),
                    "the rootfs half written to slot b")
    assert flash_temporaries(board, "rootfs_b"), f"kill missed the write: {where_is_it(board)}"
    assert board.read(rootfs_partition("b")) is None  # the partition itself: untouched
    assert phase(board) == "downloading" and trial(board) is None
    assert_nothing_half_written_on_trial(board)

    (report,) = power_back(board)
    assert report.slot == "a" and report.versions["rootfs"] == OLD
    assert slot_digest(board, "a") == before
    assert board.read(rootfs_partition("b")) is None

    outcomes = finish(lab, board)
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-write")


def test_power_cut_after_the_write_before_the_verification(lab: Lab) -> None:
    board = gateway(lab, "pl-written")
    child = lab.child(board, "written", verify_delay=HOLD)

    def written() -> bool:
        path = board.partition_path(rootfs_partition("b"))
        return (path.exists() and path.stat().st_size == lab.length
                and not flash_temporaries(board))

    child.kill_when(written, "slot b written, not yet verified")
    assert phase(board) == "downloading" and trial(board) is None, where_is_it(board)
    assert_nothing_half_written_on_trial(board)

    (report,) = power_back(board)
    assert report.slot == "a" and report.versions["rootfs"] == OLD

    outcomes = finish(lab, board)
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-written")


def test_power_cut_between_staged_intent_and_try_boot(lab: Lab) -> None:
    board = gateway(lab, "pl-intent")
    child = lab.child(board, "intent", stage_delay=HOLD)
    child.kill_when(lambda: phase(board) == "staged" and trial(board) is None,
                    "update.json staged, boot environment not yet switched")
    st = state.load(board)
    assert (st.phase, st.slot, st.version) == ("staged", "b", NEW), st
    env = board.read_env()
    assert env is not None and env.active == "a" and not env.try_boot, env
    assert_nothing_half_written_on_trial(board)

    (report,) = power_back(board)
    assert report.slot == "a" and report.versions["rootfs"] == OLD  # the old slot boots

    outcomes = finish(lab, board)  # verifies slot b again, stages it, reboots, commits
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-intent")


def test_power_cut_while_the_new_slot_boots_for_the_first_time(lab: Lab) -> None:
    board = gateway(lab, "pl-firstboot")
    child = lab.child(board, "firstboot", boot_delay=0.05)
    child.kill_when(lambda: trial(board) == ("b", 1)
                    and not board.ram_file(BOOT_STATE).exists(),
                    "the first boot of slot b under way (try counted, rootfs being verified)")
    assert trial(board) == ("b", 1), where_is_it(board)
    assert_nothing_half_written_on_trial(board)

    (report,) = power_back(board)  # the second try of slot b
    assert report.slot == "b" and report.versions["rootfs"] == NEW
    assert trial(board) == ("b", 2)

    outcomes = finish(lab, board)
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-firstboot")


def on_trial_in_health_check(board: VirtualBoard) -> bool:
    booted = last_boot(board) if board.ram_file(BOOT_STATE).exists() else None
    return (trial(board) == ("b", 1) and booted is not None and booted["slot"] == "b"
            and phase(board) == "staged")


def test_power_cut_during_the_health_check_commits_at_the_next_start(lab: Lab) -> None:
    board = gateway(lab, "pl-health")
    child = lab.child(board, "health", health_delay=HOLD)
    child.kill_when(lambda: on_trial_in_health_check(board),
                    "slot b booted on trial, health check under way")
    assert_nothing_half_written_on_trial(board)
    assert board.fuses().os_security_version == 1

    (report,) = power_back(board)
    assert report.slot == "b" and trial(board) == ("b", 2)

    outcomes = finish(lab, board)
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-health")


def test_power_cuts_on_every_trial_boot_until_bl2_falls_back(lab: Lab) -> None:
    board = gateway(lab, "pl-fallback")
    child = lab.child(board, "fallback", health_delay=HOLD)
    child.kill_when(lambda: on_trial_in_health_check(board),
                    "slot b booted on trial, health check under way")

    # the power keeps failing before any agent gets to commit: every boot counts
    reports = power_back(board, DEFAULT_BOOT_LIMIT)
    assert [r.slot for r in reports] == ["b"] * (DEFAULT_BOOT_LIMIT - 1) + ["a"]
    assert reports[-1].fallback, "BL2 did not say it fell back"
    assert reports[-1].versions["rootfs"] == OLD

    agent = fresh_agent(lab, board)
    done = agent.updater().after_boot()
    assert done.action == "rolled-back" and "not committed after" in done.detail, done
    again = agent.check_updates()  # not retried on its own
    assert again.action == "none" and "failed here before" in again.detail, again
    assert_rolled_back(lab, board, "pl-fallback", "a", "not committed after")


def test_power_cut_between_the_commit_and_the_counter_burn(lab: Lab) -> None:
    board = gateway(lab, "pl-burn")
    child = lab.child(board, "burn", burn_delay=HOLD)

    def committed_not_burnt() -> bool:
        env = board.read_env()
        return (env is not None and env.active == "b" and not env.try_boot
                and board.fuses().os_security_version == 1)

    child.kill_when(committed_not_burnt, "slot b committed, OS counter not yet burnt")
    assert board.fuses().os_security_version == 1, where_is_it(board)

    (report,) = power_back(board)
    assert report.slot == "b" and report.versions["rootfs"] == NEW

    outcomes = finish(lab, board)
    assert [o.action for o in outcomes] == ["committed"], outcomes
    assert_committed(lab, board, "pl-burn")  # and the counter is burnt after all


def test_a_cut_before_the_try_boot_is_not_taken_for_an_older_rollback(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A release that rolled back leaves BL2's (or the health check's) note in the boot
    environment. A power cut between the next release's staged intent and its try-boot
    must stage that release again, not report it rolled back for the older one's reason
    (and remember it as failed, so it is never offered again without --now)."""
    agent = world.gateway("gw-stale")
    board = world.boards["gw-stale"]
    world.publish(world.build("1.1.0", 2), "stable")
    with monkeypatch.context() as m:
        m.setattr(Agent, "health", lambda self: "the app did not start")
        bad = agent.check_updates()
    env = board.read_env()
    assert bad.action == "rolled-back" and env is not None and env.active == "a", bad
    assert "the app did not start" in env.last_fallback

    world.publish(world.build("1.2.0", 2), "stable")
    child = Child(world.server.url, board, "stale", stage_delay=HOLD)
    child.kill_when(lambda: phase(board) == "staged" and trial(board) is None,
                    "update.json staged, boot environment not yet switched")
    assert state.load(board).version == "1.2.0"
    power_back(board)

    done = fresh_agent(world, board).updater().after_boot()
    assert (done.action, done.version) == ("committed", "1.2.0"), done
    assert "1.2.0" not in state.load(board).failed
    booted = last_boot(board)
    assert booted is not None and booted["versions"]["rootfs"] == "1.2.0"
    with world.admin() as client:
        current = client.call("GET", "/v1/gateways/gw-stale/update")["current"]
    assert (current["version"], current["phase"]) == ("1.2.0", "committed"), current


# --- at random moments -----------------------------------------------------------------------
def test_an_uninterrupted_update_in_a_child_commits(lab: Lab) -> None:
    """The reference for the sweep: the throttled update runs to its end in the child;
    from its first step (after the interpreter started) to its end is the span the
    random kills are drawn from."""
    board = gateway(lab, "pl-reference")
    child = lab.child(board, "reference", **SWEEP)
    first_step = 0.0
    while child.proc.poll() is None:
        if not first_step and phase(board) != "idle":
            first_step = time.monotonic() - child.started
        time.sleep(0.005)
    outcome = child.finish()
    lab.sweep = (first_step * 0.9, time.monotonic() - child.started)
    assert outcome["action"] == "committed", outcome
    assert_committed(lab, board, "pl-reference")


@pytest.mark.parametrize("seed", range(int(os.environ.get("EDGEWARD_POWER_SEEDS", "10"))))
def test_power_cut_at_a_random_moment(lab: Lab, seed: int) -> None:
    """Kill the update at a moment drawn from its whole span (once, sometimes again
    while it recovers), then power on once or a few times in a row: every power-on
    boots a verified slot, and the next agent start ends committed, or rolled back with
    a reason (BL2's boot limit reached, say); then a forced retry commits."""
    rng = random.Random(seed)
    serial = f"pl-sweep-{seed}"
    board = gateway(lab, serial)
    story: list[str] = []
    for cut in range(rng.choice((1, 1, 2))):  # sometimes the power fails again mid-recovery
        delay = rng.uniform(*lab.sweep)
        child = lab.child(board, f"sweep-{cut}", **SWEEP)
        if not child.kill_after(delay):
            story.append(f"cut {cut} at {delay:.2f} s: the update had ended: "
                         f"{child.out.read_text().strip()}")
            assert child.proc.returncode == 0, child.output()
            break
        story.append(f"cut {cut} at {delay:.2f} s: {where_is_it(board)}")
        assert_nothing_half_written_on_trial(board)
        boots = rng.choice((1, 1, 1, 2, DEFAULT_BOOT_LIMIT + 1))  # outages in a row
        reports = power_back(board, boots)
        story.append(f"  {boots} power-on(s): slots {[r.slot for r in reports]}")

    agent = fresh_agent(lab, board)
    first = agent.updater().after_boot()
    story.append(f"agent start: {first}")
    reason = state.load(board).failed.get(NEW)
    if reason is not None:  # e.g. the power failed on every try of the trial slot
        assert reason, "\n".join(story)
        assert_rolled_back(lab, board, serial, "a", reason)
    again = agent.check_updates(force=True)
    story.append(f"update check: {again}")
    print(f"seed {seed}:", *story, sep="\n  ")
    assert again.action in ("committed", "none"), "\n".join(story)
    assert_committed(lab, board, serial)
