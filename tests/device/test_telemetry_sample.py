"""Telemetry samples: counters become deltas that survive resets, and a real sample
(psutil) of this machine sees the CPU it was made to burn and the bytes it was made to
send over the loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from edgeward.device.telemetry.counters import busy_percent, delta, deltas
from edgeward.device.telemetry.sampler import Sampler


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    assert delta(100, 250) == 150
    assert delta(2**32 - 10, 5) == 5  # wrapped, or the gateway rebooted: no 4-GiB spike
    assert deltas({"bytes_sent": 10, "gone": 3}, {"bytes_sent": 4, "new": 7}) == {
        "bytes_sent": 4, "new": 7}


def test_cpu_busy_share_from_the_time_counters() -> None:
    before = {"user": 100.0, "system": 50.0, "idle": 800.0, "iowait": 50.0}
    after = {"user": 160.0, "system": 70.0, "idle": 810.0, "iowait": 60.0}
    assert busy_percent(before, after) == 80.0  # 80 busy of 100 seconds
    assert busy_percent(after, after) == 0.0  # no time passed
    assert busy_percent(after, before) == 0.0  # a reset in between: not a negative share


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_real_sample_sees_the_cpu_burnt_and_the_bytes_sent(tmp_path: Path) -> None:
    sampler = Sampler(tmp_path)
    first = sampler.sample()
    assert "cpu_percent" not in first and 0 < first["memory_percent"] < 100
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(1 << 16):
                received.extend(chunk)

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(server.getsockname()) as client:
        client.sendall(b"x" * (4 << 20))
    thread.join(timeout=10)
    server.close()
    _burn(0.5)
    second = sampler.sample()
    assert len(received) == 4 << 20
    assert second["net"]["bytes_sent"] >= 4 << 20  # the loopback counts both ways
    assert second["cpu_percent"] > 20.0  # one of this machine's CPUs was kept busy
    assert second["interval"] > 0.4
