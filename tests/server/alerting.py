"""Helpers for the alert tests: raise an alert through the running server's database, a
real HTTP receiver for the web hook, and waiting for something the server does on its own."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from edgeward.server.db.models import Gateway
from edgeward.server.services import alerts
from tests.server.harness import Fleet


def raise_alert(fleet: Fleet, serial: str, kind: str = "cpu-anomaly", app: str = "",
                severity: str = "high") -> int:
    """An alert about ``serial`` as the server's detectors raise them; its id."""
    with fleet.server.state.db.transaction() as session:
        gateway = session.execute(select(Gateway).where(Gateway.serial == serial)).scalar_one()
        alert = alerts.raise_alert(session, gateway, kind, f"{kind} on {serial}",
                                   dt.datetime.now(dt.UTC), severity=severity, app=app,
                                   source="detector", evidence={"cpu": 0.93, "z": 7.5})
        assert alert is not None
        session.flush()
        return alert.id


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it answers something true (a bound so a broken server fails
    the test instead of hanging it: nothing asserts how fast it happens)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


class Receiver:
    """An HTTP server on 127.0.0.1 (HTTPS with ``tls``) that keeps what is posted to it and
    answers ``status`` (with ``location``, for a redirect)."""

    def __init__(self, port: int = 0, status: int = 200, location: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received, answer = self.received, (status, location)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(answer[0])
                if answer[1]:
                    self.send_header("location", answer[1])
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.scheme = "http" if tls is None else "https"
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(timeout=10)
