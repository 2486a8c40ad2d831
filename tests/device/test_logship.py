"""Shipping app and agent logs: real files as the log sink writes them (stamped, tagged,
rotated to ``.1``), read where the last batch ended, across rotation, truncation, a
line still being written and an agent restart; a batch sent again keeps its id."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from edgeward.device.apps.logsink import LogSink
from edgeward.device.telemetry import logfiles
from edgeward.device.telemetry.logship import Batch, LogShipper
from edgeward.errors import StateError

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def stamp(seconds: float) -> bytes:
    when = T0 + dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def sink_lines(*texts: str, stream: str = "out", at: float = 0) -> bytes:
    return b"".join(stamp(at + i) + f" {stream} {t}\n".encode() for i, t in enumerate(texts))


class World:
    def __init__(self, tmp: Path) -> None:
        self.apps = tmp / "apps"
        self.state = tmp / "system" / "edgeward" / "logship.json"

    def log(self, app: str = "miner", daemon: str = "main") -> Path:
        folder = self.apps / app / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{daemon}.log"

    def append(self, data: bytes, app: str = "miner", daemon: str = "main") -> None:
        with self.log(app, daemon).open("ab") as f:
            f.write(data)

    def rotate(self, app: str = "miner", daemon: str = "main") -> None:
        path = self.log(app, daemon)
        os.replace(path, path.with_name(path.name + ".1"))

    def shipper(self, **options: Any) -> LogShipper:
        return LogShipper(self.apps, self.state, clock=lambda: 1e9, **options)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def texts(batch: Batch) -> list[str]:
    return [line["text"] for line in batch.lines]


def ship(shipper: LogShipper, limit: int | None = None) -> list[str]:
    batch = shipper.take(limit)
    shipper.sent(batch)
    return texts(batch)


def test_lines_are_parsed_with_their_stamp_stream_and_level(world: World) -> None:
    world.append(sink_lines("starting up", at=0))
    world.append(sink_lines("Traceback (most recent call last):", stream="err", at=1))
    world.append(sink_lines("WARNING:root:disk almost full", stream="err", at=2))
    world.append(sink_lines("[info] connected to broker", stream="err", at=3))
    world.append(sink_lines("12:00:03 ERROR upload failed", at=4))
    world.append(sink_lines("tab\there \x1b[31mred\x1b[0m bell\x07 " + "x" * 3000, at=5))
    world.append(b"no stamp at all\n" + stamp(6) + b" out \n\n")
    batch = world.shipper().take()
    assert len(batch.id) == 32 and int(batch.id, 16) >= 0
    lines = batch.lines
    assert [(line["level"], line["app"], line["source"]) for line in lines] == [
        ("info", "miner", "app"), ("error", "miner", "app"), ("warning", "miner", "app"),
        ("info", "miner", "app"), ("error", "miner", "app"), ("info", "miner", "app"),
        ("info", "miner", "app")]
    assert lines[0] == {"time": T0.timestamp(), "app": "miner", "source": "app",
                        "level": "info", "text": "starting up"}
    assert lines[4]["time"] == T0.timestamp() + 4
    cleaned = lines[5]["text"]
    assert cleaned.startswith("tab here [31mred[0m bell x") and len(cleaned) == 2000
    assert all(c.isprintable() for c in cleaned)
    assert lines[6] == {"time": 1e9, "app": "miner", "source": "app", "level": "info",
                        "text": "no stamp at all"}  # kept whole, stamped when read
    assert body_size(batch) < 8000


def body_size(batch: Batch) -> int:
    return len(json.dumps(batch.body()))


def test_the_real_log_sink_rotating_loses_and_repeats_nothing(world: World) -> None:
    sink = LogSink(limit=600)
    path = world.log()
    read, write = os.pipe()
    sink.attach(read, path, "err")
    shipper = world.shipper()
    got: list[str] = []
    try:
        for i in range(40):
            os.write(write, f"ERROR line {i:02d}\n".encode())
            while not path.exists() or b"line %02d" % i not in (
                    path.read_bytes() + _rotated(path)):
                time.sleep(0.005)  # the sink's thread writes it
            if i % 7 == 0:  # between writes and rotations the sink does meanwhile
                got += ship(shipper)
    finally:
        os.close(write)
        sink.close()
    got += ship(shipper)
    assert path.with_name("main.log.1").exists()  # it did rotate
    assert got == [f"ERROR line {i:02d}" for i in range(40)]


def _rotated(path: Path) -> bytes:
    rotated = path.with_name(path.name + ".1")
    return rotated.read_bytes() if rotated.exists() else b""


def test_a_line_being_written_waits_for_its_newline_even_across_a_rotation(
        world: World) -> None:
    shipper = world.shipper()
    world.append(sink_lines("one", "two") + stamp(2) + b" out thr")
    assert ship(shipper) == ["one", "two"]  # "thr..." is not a line yet
    assert ship(shipper) == []
    world.append(b"ee\n" + sink_lines("four", at=3))
    world.rotate()  # the sink moved the file aside and starts a new one
    world.append(sink_lines("five", "six", at=5))
    assert ship(shipper) == ["three", "four", "five", "six"]
    world.append(sink_lines("seven", at=7) + stamp(8) + b" out cut off by a crash")
    world.rotate()  # a last line that will never end: the rotated file is complete
    world.append(sink_lines("nine", at=9))
    assert ship(shipper) == ["seven", "cut off by a crash", "nine"]
    assert ship(shipper) == []


def test_rotated_twice_between_batches_ships_what_is_left(world: World) -> None:
    shipper = world.shipper()
    world.append(sink_lines("a"))
    assert ship(shipper) == ["a"]
    world.append(sink_lines("b"))
    world.rotate()
    world.append(sink_lines("c"))
    world.rotate()  # "a" and "b" are gone for good
    world.append(sink_lines("d"))
    assert ship(shipper) == ["c", "d"]


def test_a_truncated_log_is_read_again_from_its_start(world: World) -> None:
    shipper = world.shipper()
    world.append(sink_lines("old one", "old two", "old three"))
    assert len(ship(shipper)) == 3
    with world.log().open("r+b") as f:
        f.truncate(0)
    world.append(sink_lines("new"))
    assert ship(shipper) == ["new"]
    world.rotate()
    world.append(sink_lines("after rotation", at=10))
    assert ship(shipper) == ["after rotation"]
    with world.log().open("r+b") as f:  # truncated beside a rotated file read already
        f.truncate(0)
    world.append(sink_lines("again", at=20))
    assert ship(shipper) == ["again"]


def test_a_batch_sent_again_keeps_its_id_and_lines(world: World) -> None:
    shipper = world.shipper()
    world.append(sink_lines("first", "second"))
    shipper.ship_agent("update check failed: connection refused", "error")
    batch = shipper.take()
    world.append(sink_lines("third"))  # arrives while the send fails
    shipper.ship_agent("retrying in 2 s")
    again = shipper.take()
    assert again.id == batch.id and again.lines == batch.lines
    assert texts(again) == ["update check failed: connection refused", "first", "second"]
    assert again.lines[0]["source"] == "agent" and again.lines[0]["level"] == "error"
    with pytest.raises(StateError):
        shipper.sent(Batch("0" * 32, [{"text": "x"}], {}))
    shipper.sent(again)
    following = shipper.take()
    assert following.id != batch.id
    assert texts(following) == ["retrying in 2 s", "third"]


def test_a_restart_resumes_from_the_state_file_and_resends_under_the_same_id(
        world: World) -> None:
    world.append(sink_lines("one", "two", "three"), app="hvac")
    world.append(sink_lines("alpha", "beta"))
    before = world.shipper()
    before.ship_agent("agent line lost with the process")
    unsent = before.take()
    assert set(texts(unsent)) == {"agent line lost with the process", "one", "two",
                                  "three", "alpha", "beta"}
    mode = stat.S_IMODE(world.state.stat().st_mode)
    assert mode == 0o600
    world.append(sink_lines("gamma", at=5))  # written while the agent was down
    after = world.shipper()  # the agent restarted: the same batch goes again
    again = after.take()
    assert again.id == unsent.id
    assert sorted(texts(again)) == sorted(["one", "two", "three", "alpha", "beta"])
    after.sent(again)
    assert ship(after) == ["gamma"]
    assert ship(world.shipper()) == []  # committed: nothing is sent twice
    written = world.state.stat().st_ino
    assert ship(after) == [] and world.state.stat().st_ino == written  # no needless write
    saved = json.loads(world.state.read_text())
    assert saved["pending"] is None and set(saved["files"]) == {"hvac/main", "miner/main"}


def test_a_corrupt_state_file_starts_over(world: World) -> None:
    world.append(sink_lines("one"))
    world.state.parent.mkdir(parents=True)
    world.state.write_text('{"files": {"../../etc/passwd": [1, 0]}, "pending": {"id": 7}}')
    assert ship(world.shipper()) == ["one"]
    world.state.write_text("not json")
    assert ship(world.shipper()) == ["one"]


def test_caps_on_lines_and_bytes_and_every_log_gets_its_turn(world: World) -> None:
    world.append(sink_lines(*[f"chatty {i}" for i in range(30)]), app="chatty")
    world.append(sink_lines("quiet"), app="quiet")
    shipper = world.shipper(max_lines=10)
    first = shipper.take()
    assert len(first.lines) == 10
    shipper.sent(first)
    second = shipper.take(limit=4)
    assert len(second.lines) == 4
    shipper.sent(second)
    rest: list[str] = []
    while shipped := ship(shipper):
        rest += shipped
    everything = texts(first) + texts(second) + rest
    assert sorted(everything) == sorted([f"chatty {i}" for i in range(30)] + ["quiet"])
    assert "quiet" in texts(first) + texts(second)  # not behind all of chatty's

    big = world.shipper(max_bytes=20_000)
    world.append(sink_lines(*[f"{i:04d} " + "y" * 1900 for i in range(40)], at=100),
                 app="big")
    sizes = []
    while (batch := big.take()).lines:
        sizes.append(body_size(batch))
        big.sent(batch)
    assert len(sizes) >= 4 and max(sizes) <= 20_000 + 100


def test_a_line_longer_than_a_read_is_cut_not_stuck(world: World) -> None:
    world.append(stamp(0) + b" out " + b"z" * (logfiles.CHUNK * 2) + b"\n" + sink_lines("after"))
    shipper = world.shipper()
    got: list[str] = []
    while shipped := ship(shipper):
        got += shipped
    assert got[-1] == "after" and all(len(t) <= 2000 for t in got)


def test_agent_lines_are_bounded_and_the_drop_is_reported(world: World) -> None:
    shipper = world.shipper(agent_queue=5)
    for i in range(8):
        shipper.ship_agent(f"say {i}", "bogus")
    shipper.ship_agent("   \x00  ")  # nothing printable: nothing queued
    batch = shipper.take()
    assert texts(batch) == ["3 agent log lines dropped while the fleet server was away "
                            "(more than 5 queued)", "say 3", "say 4", "say 5", "say 6",
                            "say 7"]
    assert {line["level"] for line in batch.lines[1:]} == {"info"}
    assert batch.lines[0]["level"] == "warning"
    shipper.sent(batch)
    assert shipper.take().lines == []
    assert not world.state.exists() or json.loads(world.state.read_text())["pending"] is None
