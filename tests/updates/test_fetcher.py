"""Resumable target downloads against a real HTTP server that breaks connections."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgeward.device.updates.fetcher import download
from edgeward.errors import IntegrityError, Unreachable

DATA = os.urandom(3 << 20)


class _Handler(http.server.BaseHTTPRequestHandler):
    behaviour = "break-once"
    ranges: list[str] = []
    served = 0

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        header = self.headers.get("range")
        cls.ranges.append(header or "")
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        body = DATA + (os.urandom(1 << 20) if cls.behaviour == "endless" else b"")
        if cls.behaviour == "ignore-range":
            start = 0
        self.send_response(206 if start else 200)
        self.send_header("content-length", str(len(body) - start))
        self.end_headers()
        cls.served += 1
        if cls.behaviour == "break-once" and cls.served == 1:
            self.wfile.write(body[start:start + len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-download
            return
        if cls.behaviour == "always-break":
            self.wfile.write(body[start:start + 1000])
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.ranges, _Handler.served, _Handler.behaviour = [], 0, "break-once"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/target"
    httpd.shutdown()


def test_a_broken_download_resumes_where_it_stopped(server: str, tmp_path: Path) -> None:
    part = tmp_path / "rootfs.img.part"
    with httpx.Client() as http:
        download(http, server, part, len(DATA), pause=0.01)
    assert part.read_bytes() == DATA
    assert _Handler.ranges[0] == "" and _Handler.ranges[1].startswith("bytes=")
    assert int(_Handler.ranges[1][6:-1]) >= len(DATA) // 3 - (1 << 20)  # not from zero


def test_a_partial_file_from_before_a_power_cut_is_continued(server: str,
                                                             tmp_path: Path) -> None:
    _Handler.behaviour = "normal"
    part = tmp_path / "rootfs.img.part"
    part.write_bytes(DATA[:12345])
    with httpx.Client() as http:
        download(http, server, part, len(DATA), pause=0.01)
    assert part.read_bytes() == DATA and _Handler.ranges == ["bytes=12345-"]


def test_more_bytes_than_signed_are_refused(server: str, tmp_path: Path) -> None:
    _Handler.behaviour = "endless"
    part = tmp_path / "rootfs.img.part"
    with httpx.Client() as http, pytest.raises(IntegrityError, match="endless data"):
        download(http, server, part, len(DATA), pause=0.01)
    assert part.stat().st_size <= len(DATA) + (1 << 20)


def test_a_server_that_ignores_the_range_restarts_cleanly(server: str,
                                                          tmp_path: Path) -> None:
    _Handler.behaviour = "ignore-range"
    part = tmp_path / "rootfs.img.part"
    part.write_bytes(b"x" * 5000)  # whatever was there is not kept
    with httpx.Client() as http:
        download(http, server, part, len(DATA), pause=0.01)
    assert part.read_bytes() == DATA


def test_a_server_that_keeps_breaking_gives_up_and_keeps_the_part(server: str,
                                                                  tmp_path: Path) -> None:
    _Handler.behaviour = "always-break"
    part = tmp_path / "rootfs.img.part"
    with httpx.Client() as http, pytest.raises(Unreachable, match="failed 3 times"):
        download(http, server, part, len(DATA), retries=2, pause=0.01)
    assert 0 < part.stat().st_size < len(DATA)  # kept for the next attempt
