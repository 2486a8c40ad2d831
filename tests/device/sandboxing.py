"""Shared by the sandbox tests: a throwaway app (image + data) run for real in its sandbox,
and the agent's audit monitor collecting what it reports."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeward.device.apps import cgroups, launch, sandbox
from edgeward.device.apps.denials import Denial
from edgeward.device.apps.monitor import Monitor
from edgeward.trust.appmanifest import parse
from tests.conftest import remove_scratch, require_root, require_tool, scratch_dir

USER = sandbox.AppUser(23456, 23456)


def need_root() -> None:
    require_root("starting sandboxes (the agent's work)")


class Reports:
    """What the monitor heard, per app, with a way to wait for a report."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Denial]] = []
        self.cond = threading.Condition()

    def add(self, app: str, denial: Denial) -> None:
        with self.cond:
            self.seen.append((app, denial))
            self.cond.notify_all()

    def wait(self, match: Callable[[Denial], bool], timeout: float = 5.0) -> Denial:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                found = next((d for _, d in self.seen if match(d)), None)
                if found is not None:
                    return found
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("no report matched; heard: "
                                         + "; ".join(d.what for _, d in self.seen))
                self.cond.wait(left)

    def whats(self) -> list[str]:
        with self.cond:
            return [d.what for _, d in self.seen]


@pytest.fixture
def reports() -> Iterator[Reports]:
    need_root()
    heard = Reports()
    monitor = Monitor(heard.add)
    monitor.start()
    monitor.watch(USER.uid, "probe")
    try:
        yield heard
    finally:
        monitor.stop()


class App:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.image = root / "image"
        (self.image / "bin").mkdir(parents=True)
        probe = self.image / "bin" / "probe"
        probe.write_text("#!/bin/sh\nexec /bin/sh -c \"$1\"\n")
        probe.chmod(0o755)
        self.data = root / "data"
        self.data.mkdir()
        os.chown(self.data, USER.uid, USER.gid)
        self.data.chmod(0o700)

    def plan(self, script: str, manifest: bytes = b"", name: str = "probe",
             granted: set[str] | None = None, complain: bool = False,
             peripherals: sandbox.Peripherals | None = None) -> sandbox.Plan:
        m = parse(f'name = "{name}"\nversion = "1"\npublisher = "acme"\nsummary = "p"\n'
                  .encode() + manifest)
        return sandbox.plan(m, self.image, self.data, ["bin/probe", script], granted,
                            peripherals or sandbox.Peripherals(), complain)

    def run(self, script: str, manifest: bytes = b"", **kw: object) -> tuple[int, str]:
        done = launch.run(self.plan(script, manifest, **kw), USER)  # type: ignore[arg-type]
        return done.returncode, done.stdout.decode() + done.stderr.decode()


@pytest.fixture
def app() -> Iterator[App]:
    require_tool("bwrap")
    need_root()
    launch.confine_binary()
    # the app's user must be able to reach its image and data (pytest's tmp is 0700)
    root = scratch_dir("edgeward-sandbox-")
    root.chmod(0o755)
    try:
        yield App(root)
    finally:
        for name in ("probe", "forker"):
            group = cgroups.existing(name)
            cgroups.kill(group)
            cgroups.remove(group)
        remove_scratch(root)
